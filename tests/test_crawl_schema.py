"""bilipop.crawl.schema: a store of the previous version is migrated with one message; a newer one, or a
database that is not a store, is refused."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from bilipop.cli import app
from bilipop.crawl.schema import SCHEMA_VERSION
from bilipop.crawl.store import Store
from bilipop.data.io import read_table
from bilipop.errors import InputError

runner = CliRunner()
def test_a_store_of_an_older_schema_is_refused(tmp_path):
    # No release wrote an older schema, so there is nothing to migrate: it is refused like a newer one.
    Store(tmp_path / "bilipop.db").close()
    with sqlite3.connect(tmp_path / "bilipop.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    with pytest.raises(InputError, match="development version of bilipop"):
        Store(tmp_path / "bilipop.db")
    with pytest.raises(InputError, match="development version of bilipop"):
        read_table(tmp_path / "bilipop.db")


def _newer_store(folder):
    Store(folder / "bilipop.db").close()
    with sqlite3.connect(folder / "bilipop.db") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))


def test_a_store_from_a_newer_schema_is_refused(tmp_path):
    _newer_store(tmp_path)
    with pytest.raises(InputError, match="newer bilipop"):
        Store(tmp_path / "bilipop.db")
    result = runner.invoke(app, ["filter", "-i", str(tmp_path / "bilipop.db"), "-o", str(tmp_path / "f.csv")])
    assert result.exit_code == 1 and "newer bilipop" in result.output
    assert not (tmp_path / "f.csv").exists()
    result = runner.invoke(app, ["crawl", "--data", str(tmp_path), "--api-base", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "newer bilipop" in result.output


def test_a_database_that_is_not_a_store_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE t (x)")
    result = runner.invoke(app, ["filter", "-i", str(tmp_path / "other.db"), "-o", str(tmp_path / "f.csv")])
    assert result.exit_code == 1 and "not a bilipop crawl store" in result.output
    assert not (tmp_path / "f.csv").exists()
