"""Names that a package exports but imports on first use, so that importing the package stays cheap.

``bilipop``, ``bilipop.crawl``, ``bilipop.train`` and ``bilipop.models`` each export functions whose modules pull in
torch, pandas or the HTTP stack; ``import bilipop`` (and so ``bilipop --help``) must load none of them. Each of those
``__init__`` modules hands this helper a table of its names and binds what it returns as its module-level
``__getattr__`` and ``__dir__`` (PEP 562)::

    __getattr__, __dir__ = lazy_exports(globals(), {"crawl": "bilipop.crawl.crawler"})

It imports nothing of bilipop, so that any layer can use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(namespace: dict[str, Any], names: Mapping[str, str], *, subpackages: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of the package whose ``globals()`` is ``namespace``.

    Args:
        namespace: the package's ``globals()``; a name, once imported, is stored there, so later lookups are plain
            attribute reads.
        names: exported name -> the module that defines it under that name.
        subpackages: names of subpackages that resolve to the subpackage itself (``bilipop.crawl`` is the package
            even though ``bilipop.crawl.crawl`` is a function).
    """
    package = namespace["__name__"]
    table = dict(names)
    modules = tuple(subpackages)
    listed = namespace.get("__all__")

    def __getattr__(name: str) -> Any:
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        if name in table:
            value = getattr(importlib.import_module(table[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        # A package with ``__all__`` shows just that; another its public globals and the names still to import.
        if listed is not None:
            return sorted(listed)
        return sorted({*table, *modules, *(k for k in namespace if not k.startswith("_"))})

    return __getattr__, __dir__
