"""The documents that the code cites ship with it: every "docs/reference.md, "Heading"" names a real heading, and
no module cites a document that is not in the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = sorted((ROOT / "bilipop").rglob("*.py"))


def headings(text: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def test_citations_of_the_reference_and_the_readme_name_real_headings():
    cited = 0
    for path in SOURCES:
        text = path.read_text(encoding="utf-8").replace('\\"', '"')
        for doc, heading in re.findall(r'(docs/reference\.md|README),? (?:\()?"([^"\n]+)"', text):
            shown = headings(REFERENCE if doc.startswith("docs") else README)
            assert any(h.startswith(heading) for h in shown), (path.name, heading)  # a heading's start will do
            cited += 1
    assert cited >= 10


def test_no_module_cites_a_document_that_does_not_ship():
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for name in ("SPEC", "BILIBILI_API", "GPIPE_NOTES"):
            assert not re.search(rf"\b{name}\b", text), (path.relative_to(ROOT), name)


def test_the_filter_error_points_at_the_shipped_reference():
    import pandas as pd
    import pytest

    from bilipop import filter_videos
    from bilipop.errors import InputError

    with pytest.raises(InputError) as exc:
        filter_videos(pd.DataFrame({"bvid": ["BV1"]}))
    assert 'docs/reference.md ("Columns")' in str(exc.value) and "Columns" in headings(REFERENCE)
