"""A smaller run for those who only predict: ``export_run`` writes a run folder without the optimizer checkpoint,
its weights in 16-bit (safetensors and JSON only). int8 is ``bilipop.models.quantize``, applied at load time, since
its packed weights cannot be stored without pickle.

An exported run is computed in float32 like any other: the 16-bit weights are widened when they are loaded, so only
the file (and the download) shrinks, and the predictions move by the rounding of the weights (docs/study-model.md).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from bilipop.errors import InputError, ModelError
from bilipop.files import atomic_folder, current_umask
from bilipop.layout import CONFIG, TOKENIZER, WEIGHTS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ExportReport:
    """What ``export_run`` wrote: the folder, the precision and the weights' size before and after."""

    out: Path
    dtype: str
    source_bytes: int
    weights_bytes: int


def export_run(run: str | Path, out: str | Path, dtype: str = "bf16") -> ExportReport:
    """Write a copy of run folder ``run`` to ``out`` that holds only what predict, evaluate and serve read:
    config.json (with ``weights_dtype``), tokenizer/, model.safetensors in ``dtype``, and the split and history
    files when present (evaluate reads the split). No checkpoint.pt: the optimizer state stays behind.

    Raises:
        InputError: an unknown dtype, or ``out`` is the run itself or holds something that is not a run.
        ModelError: ``run`` is not a loadable run folder.
    """
    from safetensors.torch import load_file, save_file

    from bilipop.layout import HISTORY, SPLIT
    from bilipop.models.run import read_config, write_config

    if dtype not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    run, out = Path(run), Path(out)
    if not run.is_dir():
        raise ModelError(f"run folder {run} does not exist; pass a folder written by bilipop train")
    if out.resolve() == run.resolve():
        raise InputError(f"the export {out} would overwrite the run {run}; choose another folder")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CONFIG).is_file())):
        raise InputError(f"{out} exists and is not a run folder; choose a new or empty folder")
    config = read_config(run)
    weights = run / WEIGHTS
    if not weights.is_file():
        raise ModelError(f"{weights} is missing: the run did not finish an epoch; train it first")
    from bilipop.models.limits import check_run_config

    check_run_config(config, run / CONFIG, weights)
    try:
        state = load_file(str(weights))
    except Exception as exc:
        raise ModelError(f"cannot read {weights}: {str(exc).splitlines()[0]}; the file is damaged") from exc
    target = DTYPES[dtype]
    state = {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}
    config = {k: v for k, v in config.items() if k not in ("format_version", "bilipop_version")}
    config["weights_dtype"] = dtype

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "dtype": dtype})
        os.chmod(tmp / WEIGHTS, 0o666 & ~current_umask())  # as readable as the run's own files
        if (run / TOKENIZER).is_dir():
            shutil.copytree(run / TOKENIZER, tmp / TOKENIZER)
        for name in (SPLIT, HISTORY):
            if (run / name).is_file():
                shutil.copy2(run / name, tmp / name)
        write_config(tmp, config)

    atomic_folder(out, write)
    return ExportReport(out, dtype, weights.stat().st_size, (out / WEIGHTS).stat().st_size)
