"""Cover and title encoders, the fusion model, the encoder registry, weight resolution and the run folder.

``list_encoders`` and ``create_model`` are loaded on first use (they need torch; ``bilipop.models.tokenizer`` and
``bilipop.models.limits`` do not)."""

from __future__ import annotations

from bilipop.lazy import lazy_exports

_API = {"list_encoders": "bilipop.models.registry", "create_model": "bilipop.models.factory",
        "resolve_weights": "bilipop.models.weights", "load_run": "bilipop.models.run"}

__all__ = list(_API)

__getattr__, __dir__ = lazy_exports(globals(), _API)
