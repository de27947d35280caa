"""The Environment block every benchmark prints."""

from __future__ import annotations

import os
import platform
import sys


def environment() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"CPU: {cpu} ({os.cpu_count()} logical cores)", f"Python: {sys.version.split()[0]}",
             f"OS: {platform.system()} {platform.release()}"]
    for name in ("numpy", "pandas", "pyarrow", "torch", "transformers", "PIL"):
        module = sys.modules.get(name)
        if module is not None:
            lines.append(f"{name}: {getattr(module, '__version__', '?')}")
    return "\n".join(lines)
