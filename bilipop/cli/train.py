"""``train``: builds a TrainConfig from the flags, runs the core's train and prints one line per epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bilipop.cli import views
from bilipop.cli.console import note, out, progress_bar, user_errors
from bilipop.cli.main import app
from bilipop.cli.options import DataDir, InputFile, parse_counts, parse_floats
from bilipop.train_config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_BERT,
    DEFAULT_CHECKPOINT,
    DEFAULT_EPOCHS,
    DEFAULT_TEXT,
    DEFAULT_VISION,
    DEFAULT_VIT,
    DEFAULT_VIT_WEIGHT,
    TrainConfig,
)


def print_epoch_row(row: dict, header: list[bool]) -> None:
    """One history row under a header printed before the first (``header`` remembers whether it was)."""
    if not header:
        out.print(views.epoch_header(), style="bold")
        header.append(True)
    out.print(views.epoch_line(row))


def _parse_devices(text: str | None) -> tuple[str, ...] | None:
    return tuple(d.strip() for d in text.split(",")) if text else None


def _parse_balance(text: str | None) -> tuple[int, ...] | str | None:
    if text is None or text.strip() in ("cost", "time"):
        return None if text is None else text.strip()
    return tuple(parse_counts(text, "--balance"))


@app.command("train", epilog="Example: bilipop train --data data --out runs/first --vit tiny --bert tiny "
                             "--devices cpu,cpu --epochs 3")
def train_cmd(
    data: DataDir = Path("data"),
    input: InputFile = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Run folder to write (a sweep writes RUN/w<weight>/).")
                       ] = ...,  # type: ignore[assignment]  # Typer: ... marks a required option
    vit: Annotated[str, typer.Option(help="Cover model: pretrained name, tiny, or a .pth path (with --vision vgg: "
                                          "vgg16, random, tiny or a path).")] = DEFAULT_VIT,
    bert: Annotated[str, typer.Option(help="Title model: Hugging Face name, tiny, or a save_pretrained folder.")
                    ] = DEFAULT_BERT,
    vision: Annotated[str, typer.Option(help="Cover encoder: vit or vgg (the study's Table 2).")] = DEFAULT_VISION,
    text: Annotated[str, typer.Option(help="Title encoder: bert or rnn (the study's Table 2).")] = DEFAULT_TEXT,
    vit_weight: Annotated[str, typer.Option(help="Cover weight w in w*vision + (1-w)*text; a comma list sweeps "
                                                 "(Table 1).")] = f"{DEFAULT_VIT_WEIGHT:g}",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = DEFAULT_EPOCHS,
    batch_size: Annotated[int, typer.Option(help="Rows per step (over all processes).")] = DEFAULT_BATCH_SIZE,
    lr: Annotated[float | None, typer.Option(help="AdamW learning rate \\[default: 5e-5; 1e-3 with tiny models].")
                  ] = None,
    gpus: Annotated[int | None, typer.Option(help="Use cuda:0..N-1 (GPipe when N >= 2) \\[default: every visible "
                                                  "GPU, else CPU].")] = None,
    devices: Annotated[str | None, typer.Option(help="GPipe over these devices, e.g. cpu,cpu or cuda:0,cuda:2.")
                       ] = None,
    chunks: Annotated[int | None, typer.Option(help="GPipe micro-batches per batch \\[default: 4 per device].")
                      ] = None,
    balance: Annotated[str | None, typer.Option(help="Pipeline layers per device, e.g. 3,3; or time (by timing, "
                                                     "differs between runs) \\[default: cost, from each layer's "
                                                     "FLOPs: the same every run].")] = None,
    checkpoint: Annotated[str, typer.Option(help="GPipe activation checkpointing: never, except_last or always.")
                          ] = DEFAULT_CHECKPOINT,
    precision: Annotated[str | None, typer.Option(help="bf16, fp16 or fp32 \\[default: bf16/fp16 on GPU, fp32 on "
                                                       "CPU].")] = None,
    cache: Annotated[bool, typer.Option("--cache", help="Keep resized covers in a uint8 memmap (RUN/cover_cache) "
                                                        "so later epochs skip JPEG decoding.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split, the initial weights and the batch order.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out exactly.")] = False,
    num_workers: Annotated[int | None, typer.Option(help="DataLoader worker processes \\[default: 0 for small "
                                                         "datasets, else up to 4].")] = None,
    select_on: Annotated[str, typer.Option(help="Part that history.jsonl reports and the kept epoch is chosen on: "
                                                "valid, or test to reproduce the study's protocol.")] = "valid",
    vit_heads: Annotated[int | None, typer.Option(help="Attention heads of a --vit PATH checkpoint that is not a "
                                                       "known ViT (its weights do not record it).")] = None,
    loss: Annotated[str, typer.Option(help="ce: 5-way cross-entropy (the study); corn: rank-consistent ordinal "
                                           "(CORN), same five probabilities out.")] = "ce",
    class_weights: Annotated[str, typer.Option(help="none, or balanced: weight each class by n / (5 n_k) of the "
                                                    "train part (helps the rare top classes).")] = "none",
    random_init: Annotated[bool, typer.Option("--random-init", help="The --vit/--bert architectures with random "
                                                                    "weights: no weights read or downloaded.")
                           ] = False,
) -> None:
    """Train the ViT + BERT late-fusion classifier and write a self-contained run folder."""
    from bilipop.train.trainer import train

    header: list[bool] = []
    with user_errors():
        config = TrainConfig(
            vit=vit, bert=bert, vision=vision, text=text, vit_weight=tuple(parse_floats(vit_weight, "--vit-weight")),
            epochs=epochs, batch_size=batch_size, lr=lr, gpus=gpus, devices=_parse_devices(devices), chunks=chunks,
            balance=_parse_balance(balance), checkpoint=checkpoint, precision=precision, cache=cache, seed=seed,
            num_workers=num_workers, select_on=select_on, vit_heads=vit_heads, loss=loss,
            class_weights=class_weights, random_init=random_init,
        )
    with user_errors(), progress_bar("training") as update:
        result = train(config, data=data, input=input, out=out_dir, resume=resume, progress=update,
                       on_epoch=lambda row: print_epoch_row(row, header))
    if not result.is_main:  # torchrun: rank 0 reports for everyone
        return
    for w, run, best, history in zip(result.weights, result.runs, result.best_epochs, result.histories,
                                     strict=True):
        if best is not None:
            row = history[best - 1]
            part = "TEST part, as the study" if select_on == "test" else "valid part"
            note(f"w={w:g}: best epoch {best} (ordinal accuracy {row['valid_ordinal_accuracy']:.4f} on the {part}) "
                 f"kept in {run}")
    if result.table1 is not None:
        note(f"Table 1 layout written to {result.table1} and {result.table1.with_suffix('.csv')}")
