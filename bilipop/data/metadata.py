"""What a stage records about how it made a table, kept with the table (docs/score-and-label.md).

Each record is a small JSON object under a key named ``bilipop.<what>``; today there is one, ``bilipop.score``
(the weights, norm and age mode that ``score`` used, ``bilipop.data.scoring.ScoreSettings``). In memory the
records live in ``DataFrame.attrs``, so that they follow a table through the frame functions; on disk they are

- Parquet: the schema's key-value metadata, one entry per record (the value is the record as JSON);
- CSV: a sidecar file ``<file>.meta.json`` beside it, ``{"csv_sha256": ..., "records": {key: record}}``. The hash
  ties the sidecar to the CSV it was written with: a CSV changed since (edited by hand, or written by another tool)
  no longer matches, and its sidecar is then ignored with a logged warning.

Metadata is advice, never a reason to refuse a table: a file's records that cannot be read are left out (and
logged), and the stage that uses a record checks it itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from bilipop.files import atomic_write

log = logging.getLogger(__name__)

PREFIX = "bilipop."
SIDECAR_SUFFIX = ".meta.json"
#: A sidecar or Parquet record larger than this is not read (a real one is a few hundred bytes).
MAX_BYTES = 64 * 1024

Records = dict[str, Any]


def records_of(attrs: dict[Any, Any]) -> Records:
    """The ``bilipop.*`` entries of a frame's ``attrs``: what ``write_table`` keeps with the table."""
    return {k: v for k, v in attrs.items() if isinstance(k, str) and k.startswith(PREFIX)}


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where a CSV file's records are kept: ``<file>.meta.json`` beside it."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parquet_records(schema_metadata: dict[bytes, bytes] | None, path: Path) -> Records:
    """The ``bilipop.*`` records among a Parquet schema's key-value metadata (others, e.g. pandas', ignored)."""
    out: Records = {}
    for key, value in (schema_metadata or {}).items():
        name = key.decode("utf-8", "replace")
        if not name.startswith(PREFIX):
            continue
        record = _parse(value, f"{path}'s metadata {name!r}")
        if record is not _UNREADABLE:
            out[name] = record
    return out


def parquet_entries(records: Records) -> dict[bytes, bytes]:
    """``records`` as Parquet key-value metadata."""
    return {k.encode("utf-8"): json.dumps(v, allow_nan=False).encode("utf-8") for k, v in records.items()}


def read_sidecar(path: Path) -> Records:
    """The records in ``path``'s sidecar; empty when there is none, or it is unreadable, too large, or written
    with another version of ``path`` (each but the first logged as a warning)."""
    side = sidecar_path(path)
    try:
        if not side.is_file():
            return {}
        if side.stat().st_size > MAX_BYTES:
            log.warning("ignoring %s: larger than %d bytes, not a sidecar bilipop wrote", side, MAX_BYTES)
            return {}
        content = _parse(side.read_bytes(), str(side))
        if content is _UNREADABLE:
            return {}
        if (not isinstance(content, dict) or not isinstance(content.get("records"), dict)
                or content.get("csv_sha256") != file_sha256(path)):
            log.warning("ignoring %s: it was not written with this version of %s (the CSV changed since, or the "
                        "sidecar is not bilipop's); score the table again to record its settings", side, path.name)
            return {}
    except OSError as exc:
        log.warning("ignoring %s: %s", side, exc.strerror or exc)
        return {}
    return records_of(content["records"])


def write_sidecar(csv_written: Path, path: Path, records: Records) -> None:
    """Write ``path``'s sidecar for the CSV bytes now in ``csv_written`` (the temporary file about to become
    ``path``); with no records, remove a sidecar left from an earlier table of that name."""
    side = sidecar_path(path)
    if not records:
        side.unlink(missing_ok=True)
        return
    content = {"csv_sha256": file_sha256(csv_written), "records": records}
    text = json.dumps(content, allow_nan=False, indent=1) + "\n"
    atomic_write(side, lambda tmp: tmp.write_text(text, encoding="utf-8"))


#: What ``_parse`` returns for bytes that are not JSON (``None`` is JSON's null).
_UNREADABLE = object()


def _parse(raw: bytes, where: str) -> Any:
    """The JSON value of ``raw``, or ``_UNREADABLE`` (logged) when it is too large or not JSON. What the value
    holds is for its reader to check."""
    if len(raw) > MAX_BYTES:
        log.warning("ignoring %s: larger than %d bytes", where, MAX_BYTES)
        return _UNREADABLE
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        log.warning("ignoring %s: not JSON (%s)", where, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return _UNREADABLE


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
