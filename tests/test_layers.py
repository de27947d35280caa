"""The package's layering is a checked contract (pyproject.toml [tool.importlinter]): no import cycles, nothing
imports upwards; and the modules light callers need import no torch."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    beside = Path(sys.executable).parent / "lint-imports"
    command = str(beside) if beside.is_file() else shutil.which("lint-imports")
    assert command, "lint-imports is missing: pip install -e '.[dev]' (it brings import-linter)"
    done = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_layout_stages_and_progress_import_without_torch():
    code = ("import sys, bilipop.layout, bilipop.progress, bilipop.data.stages, bilipop.models, "
            "bilipop.models.tokenizer; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_only_layout_spells_the_run_folders_file_names():
    from bilipop import layout
    from bilipop.evaluation import report
    from bilipop.models import run
    from bilipop.train import trainer

    names = (layout.WEIGHTS, layout.HISTORY, layout.SPLIT, layout.CHECKPOINT, layout.SWEEP, layout.METRICS,
             layout.TABLE1_MD, layout.TABLE1_CSV)
    home = Path(layout.__file__).resolve()
    modules = [p for p in (ROOT / "bilipop").rglob("*.py") if p.resolve() != home]
    assert len(modules) > 40
    for path in modules:
        source = path.read_text(encoding="utf-8")
        for name in names:
            assert f'"{name}"' not in source, (path.relative_to(ROOT), name)
    # "config.json" also names a Hugging Face model's settings (models/limits.py checks those): it is looked for
    # in the run folder's readers and writers only
    for module in (report, run, trainer):
        assert f'"{layout.CONFIG}"' not in Path(module.__file__).read_text(encoding="utf-8"), module.__name__
