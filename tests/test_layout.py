"""bilipop.layout: the one module that spells the run folder's file names."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
