"""bilipop.lazy: the one helper behind the lazy names of bilipop, bilipop.crawl, bilipop.train and bilipop.models."""

import subprocess
import sys

import pytest

from bilipop.lazy import lazy_exports


def test_a_name_is_imported_on_first_use_and_then_kept():
    namespace = {"__name__": "fake"}
    getattr_, _ = lazy_exports(namespace, {"dumps": "json"})
    import json

    assert getattr_("dumps") is json.dumps
    assert namespace["dumps"] is json.dumps  # later reads skip __getattr__


def test_a_subpackage_resolves_to_itself_not_to_its_namesake_function():
    getattr_, _ = lazy_exports({"__name__": "bilipop"}, {}, subpackages=("crawl",))
    package = getattr_("crawl")
    assert package.__name__ == "bilipop.crawl" and callable(package.crawl)


def test_an_unknown_name_is_an_attribute_error_naming_package_and_name():
    getattr_, _ = lazy_exports({"__name__": "fake"}, {"dumps": "json"})
    with pytest.raises(AttributeError, match=r"'fake' has no attribute 'loads'"):
        getattr_("loads")


def test_dir_shows_all_when_given_else_public_globals_and_lazy_names():
    _, listed = lazy_exports({"__name__": "fake", "__all__": ["b", "a"], "x": 1}, {"a": "json"})
    assert listed() == ["a", "b"]
    _, public = lazy_exports({"__name__": "fake", "x": 1, "_hidden": 2}, {"dumps": "json"}, subpackages=("sub",))
    assert public() == ["dumps", "sub", "x"]


@pytest.mark.parametrize("package, name", [("bilipop", "read_table"), ("bilipop.crawl", "crawl"),
                                           ("bilipop.train", "train"), ("bilipop.models", "load_run")])
def test_each_package_imports_nothing_heavy_until_a_name_is_used(package, name):
    code = (f"import sys, {package} as p; heavy = [m for m in ('torch', 'pandas', 'requests') if m in sys.modules]; "
            f"assert not heavy, heavy; assert callable(getattr(p, {name!r}))")
    subprocess.run([sys.executable, "-c", code], check=True)
