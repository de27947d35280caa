"""Reading and writing tables of videos: CSV, Parquet and the crawl store, with atomic writes.

CSV keeps titles exactly as written (no "NA"/"null" guessing in text columns); known numeric columns are parsed
as numbers, and a value that is not a number becomes missing so that each stage can report or drop it.

What a stage recorded about a table (``bilipop.data.metadata``: Parquet schema metadata, a CSV's ``.meta.json``)
comes back in ``DataFrame.attrs`` and is written again with the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from bilipop.data.metadata import parquet_entries, parquet_records, read_sidecar, records_of, write_sidecar
from bilipop.data.schema import COLUMNS, NUM_CLASSES, STRING_COLUMNS, require_columns, row_name
from bilipop.errors import InputError, OutputError
from bilipop.files import atomic_write

READ_SUFFIXES = (".csv", ".parquet", ".db", ".sqlite")
WRITE_SUFFIXES = (".csv", ".parquet")
_MISSING = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table of videos from ``.csv``, ``.parquet`` or a crawl store (``.db``/``.sqlite``).

    The table's ``attrs`` hold the ``bilipop.*`` records kept with the file (``bilipop.data.metadata``) and nothing
    else; a record that cannot be read is left out with a logged warning.

    Raises:
        InputError: the file is missing, unreadable or of an unknown kind.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise InputError(f"cannot read {path}: use a {', '.join(READ_SUFFIXES)} file")
    if not path.is_file():
        raise InputError(f"input file {path} does not exist; check the path or run the previous stage first")
    if suffix in (".db", ".sqlite"):
        # The store hands over its raw query result; it is normalised here like any other table's.
        from bilipop.crawl.store import read_store_table

        return normalise_dtypes(read_store_table(path))
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            df = pd.read_parquet(path)
            records = parquet_records(pq.read_schema(path).metadata, path)  # the footer, read again: a few KB
        else:
            df = _read_csv(path)
            records = read_sidecar(path)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a damaged file
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    df.attrs = records  # only bilipop's own records: pandas' PANDAS_ATTRS from another writer are not trusted
    return normalise_dtypes(df)



def read_labeled(path: str | os.PathLike[str], *, columns: Iterable[str] = (), command: str) -> pd.DataFrame:
    """The labeled table that ``command`` (train, evaluate) reads: ``read_table``'s, checked to hold ``bvid``,
    ``label`` and ``columns``, at least one row, and only whole classes 0..NUM_CLASSES-1 in ``label`` (then int64).

    Raises:
        InputError: the file is unreadable, lacks a column, has no rows, or holds a bad label (named by its row).
    """
    path = Path(path)
    table = read_table(path)
    require_columns(table.columns, ["bvid", "label", *columns], what=f"the labeled table {path}",
                    hint=f"{command} needs the output of bilipop label")
    if len(table) == 0:
        raise InputError(f"the labeled table {path} has no rows; {command} needs labeled videos (bilipop label)")
    values = pd.to_numeric(table["label"], errors="coerce")
    bad = values.isna() | ~values.isin(range(NUM_CLASSES))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"column label of {path} must hold integers 0..{NUM_CLASSES - 1} ({row_name(table, row)} "
                         f"has {table['label'].iloc[row]!r}); run bilipop label again")
    table["label"] = values.astype("int64")
    return table


def _read_csv(path: Path) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0, encoding="utf-8").columns
    dtype = {c: str for c in header if COLUMNS.get(c) == "str"}
    na_values = {c: _MISSING for c in header if c not in STRING_COLUMNS}
    return pd.read_csv(
        path, dtype=dtype, keep_default_na=False, na_values=na_values, encoding="utf-8", low_memory=False
    )


def normalise_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """Give the known columns their schema kind. Integers stay int64 unless a value is missing (then float64).

    Raises:
        InputError: an integer column (a counter, followers, ids, times) holds a value beyond the 64-bit range;
            it would wrap to a negative number otherwise. The message names the bvid and the value.
    """
    for col in df.columns:
        kind = COLUMNS.get(col)
        given = df[col]
        if kind in ("int", "float") and not pd.api.types.is_numeric_dtype(df[col]) or (
            kind in ("int", "float") and pd.api.types.is_bool_dtype(df[col])
        ):
            df[col] = pd.to_numeric(df[col], errors="coerce")
        if kind == "int":
            _check_int64(df, col, given)
        if kind == "int" and pd.api.types.is_float_dtype(df[col]):
            df[col] = int_if_whole(df[col])
        elif kind == "bool" and not pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].map(_parse_bool)
        elif kind == "str" and df[col].dtype != object:
            df[col] = df[col].astype(str)
    return df


#: The largest value an integer column holds (int64); a counter beyond it is refused, not wrapped.
INT64_MAX = np.iinfo(np.int64).max


def _check_int64(df: pd.DataFrame, col: str, given: pd.Series) -> None:
    values = df[col]
    if pd.api.types.is_unsigned_integer_dtype(values):
        beyond = (values > INT64_MAX).to_numpy()
    elif pd.api.types.is_float_dtype(values) or values.dtype == object:
        # 2**63 is the first float beyond int64 (INT64_MAX itself rounds up to it as a float)
        as_float = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            beyond = np.isfinite(as_float) & (np.abs(as_float) >= 2.0 ** 63)
    else:
        return
    if beyond.any():
        row = int(np.flatnonzero(beyond)[0])
        where = row_name(df, row, unnamed="row")
        value = given.iloc[row]
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise InputError(f"column {col} holds {shown} at {where}, beyond the 64-bit integer range (at most "
                         f"{INT64_MAX:,}); no real count is that large: fix or remove the row")


def int_if_whole(values: pd.Series) -> pd.Series:
    """``values`` as int64 when every one is a finite whole number within int64's range; otherwise unchanged (a
    missing, infinite, fractional or too large value stays visible for the stage that checks it)."""
    as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(as_float)
    if finite.all() and (np.abs(as_float) < 2.0 ** 63).all() and (values == values.round()).all():
        return values.astype("int64")
    return values


def _parse_bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return pd.NA
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text in ("", "nan", "none", "null"):
        return pd.NA
    # Numbers other than 0/1 count as true, like Python's bool().
    try:
        return float(text) != 0
    except ValueError as exc:
        raise InputError(f"cannot read {value!r} as true/false in column on_hot_list") from exc


def anchor_cover_paths(df: pd.DataFrame, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> pd.DataFrame:
    """Keep a crawl store's covers findable from wherever its table is written.

    A store's ``cover_path`` values are relative to the store's folder (its dataset folder). Written into that same
    folder they stay relative; written anywhere else they become absolute, since a relative path would then be read
    against the wrong folder. Tables read from CSV or Parquet are returned unchanged.
    """
    src, dst = Path(src), Path(dst)
    if src.suffix.lower() not in (".db", ".sqlite") or "cover_path" not in df.columns:
        return df
    home = src.parent.resolve()
    if dst.parent.resolve() == home:
        return df
    paths = [p if not isinstance(p, str) or not p or Path(p).is_absolute() else str(home / p)
             for p in df["cover_path"]]
    return df.assign(cover_path=pd.Series(paths, index=df.index, dtype=object))


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path if its extension is one we can write; else raise InputError."""
    path = Path(path)
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise InputError(f"cannot write {path}: the output must end in {' or '.join(WRITE_SUFFIXES)}")
    return path


def csv_options(df: pd.DataFrame) -> dict:
    """``to_csv`` options that keep every text cell whole. Python's csv writer quotes a field that holds a
    character of the line terminator, and pandas ends lines with ``\\n`` alone: a title with a bare carriage return
    went out unquoted and came back as two broken rows. Such a table is written with ``\\r\\n`` line ends (which
    quotes both); every other table keeps plain ``\\n``."""
    for col in df.columns:
        if df[col].dtype == object or pd.api.types.is_string_dtype(df[col]):
            if df[col].map(lambda v: isinstance(v, str) and "\r" in v).any():
                return {"lineterminator": "\r\n"}
    return {}


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` to ``.csv`` or ``.parquet`` by extension, atomically (temp file + rename), with the ``bilipop.*``
    records of ``df.attrs`` (Parquet schema metadata, or the CSV's ``.meta.json``, written before the CSV is renamed
    into place; a CSV written without records loses an older sidecar of its name).

    Raises:
        InputError: the extension is not writable.
        OutputError: the file cannot be written (a folder in the way, no permission, a full disk); nothing is
            left behind and an older file of that name is kept.
    """
    path = check_output_path(path)
    records = records_of(df.attrs)
    write: Callable[[Path], None]
    if path.suffix.lower() == ".parquet":
        def write(tmp: Path) -> None:
            import pyarrow as pa

            # The records go in as the schema's metadata; the frame goes without attrs, which pandas would
            # otherwise copy whole as its own PANDAS_ATTRS entry.
            plain = df.copy(deep=False)
            plain.attrs = {}
            schema = pa.Schema.from_pandas(plain, preserve_index=False)
            schema = schema.with_metadata({**(schema.metadata or {}), **parquet_entries(records)})
            plain.to_parquet(tmp, index=False, schema=schema)
    else:
        def write(tmp: Path) -> None:
            df.to_csv(tmp, index=False, encoding="utf-8", **csv_options(df))
            write_sidecar(tmp, path, records)
    try:
        return atomic_write(path, write)
    except OSError as exc:  # anything pandas/pyarrow fails with while writing is a failed write
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; choose another -o/--output") from exc
