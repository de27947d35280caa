"""Cover and title encoders, the fusion model, the encoder registry, weight resolution and the run folder.

``list_encoders`` and ``create_model`` are loaded on first use (they need torch; ``bilipop.models.tokenizer`` and
``bilipop.models.limits`` do not)."""

from __future__ import annotations

import importlib
from typing import Any

_API = {"list_encoders": "bilipop.models.registry", "create_model": "bilipop.models.registry",
        "resolve_weights": "bilipop.models.weights", "load_run": "bilipop.models.run"}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'bilipop.models' has no attribute {name!r}")
