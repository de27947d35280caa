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
