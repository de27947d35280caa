"""The documents ship with the code and stay true to it: every "docs/reference.md, "Heading"" the code cites names a
real heading, every relative link in the README and docs/ resolves (anchors included), every command is shown with
its output in docs/session.md, and no page tells history or cites an issue."""

import re
from pathlib import Path

import typer.main

from bilipop.cli import app

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = sorted((ROOT / "bilipop").rglob("*.py"))
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def headings(text: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", without_code(text), flags=re.M)}


def without_code(text: str) -> str:
    """Markdown outside fenced code blocks (a `# comment` or `[x](y)` in a shell block is neither)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(text: str) -> set[str]:
    """The ids GitHub gives the headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for m in re.finditer(r"^#+ (.+)$", without_code(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def test_anchors_are_githubs():
    text = "# The web page: `bilipop serve`\n## What changed on the site in 2025-2026\n## Cost\n## Cost\n```\n# x\n```"
    assert anchors(text) == {"the-web-page-bilipop-serve", "what-changed-on-the-site-in-2025-2026", "cost",
                             "cost-1"}


def test_citations_of_the_reference_and_the_readme_name_real_headings():
    # The README's long sections moved to docs/, so a comment's (README, "Heading") may name a heading there.
    readme_and_docs = set().union(*(headings(page.read_text(encoding="utf-8")) for page in PAGES))
    cited = 0
    for path in SOURCES:
        text = path.read_text(encoding="utf-8").replace('\\"', '"')
        for doc, heading in re.findall(r'(docs/reference\.md|README),? (?:\()?"([^"\n]+)"', text):
            shown = headings(REFERENCE) if doc.startswith("docs") else readme_and_docs
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


def test_every_relative_link_resolves():
    checked = 0
    for page in PAGES:
        text = without_code(page.read_text(encoding="utf-8"))
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.exists(), (page.name, target)
            if anchor:
                assert anchor in anchors(file.read_text(encoding="utf-8")), (page.name, target)
            checked += 1
    assert checked >= 30


def test_a_broken_link_or_anchor_would_be_caught():
    page = (ROOT / "docs" / "crawling.md").read_text(encoding="utf-8")
    assert "cost" in anchors(page) and "costs" not in anchors(page)
    assert not (ROOT / "docs" / "crawl.md").exists()


def test_every_page_has_one_title_and_is_linked_from_another_page():
    texts = {page: page.read_text(encoding="utf-8") for page in PAGES}
    for page in PAGES[2:]:
        titles = re.findall(r"^# .+$", without_code(texts[page]), flags=re.M)
        assert len(titles) == 1, (page.name, titles)
        assert any(f"({page.name}" in t or f"(docs/{page.name}" in t for p, t in texts.items() if p != page), page


def test_every_command_is_shown_with_output_in_the_session_and_listed_by_help():
    from typer.testing import CliRunner

    names = sorted(typer.main.get_command(app).commands)
    assert names == sorted(["crawl", "filter", "score", "label", "train", "evaluate", "predict", "export", "demo",
                            "serve"])
    session = (ROOT / "docs" / "session.md").read_text(encoding="utf-8")
    help_text = CliRunner().invoke(app, ["--help"]).output
    for name in names:
        assert name in help_text, name
        if name != "demo":  # the demo's own output is docs/demo.md
            assert re.search(rf"^\$ bilipop {name}\b.*\n(?!```)", session, flags=re.M), name  # output follows
    assert "$ bilipop demo\n" in (ROOT / "docs" / "demo.md").read_text(encoding="utf-8")


def test_no_page_tells_history_or_cites_an_issue_or_an_unshipped_document():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for pattern in (r"\bit used to\b", r"\bbefore this release\b", r"\bprevious version\b", r"\bissue \d+",
                        r"(?<![\w/])#\d+\b", r"\bBILIBILI_API\b", r"\bSPEC\.md\b", r"\bGPIPE_NOTES\b"):
            assert not re.search(pattern, text, flags=re.I), (page.name, pattern)


def test_the_changelog_keeps_a_changelog():
    from bilipop import __version__

    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## (.+)$", text, flags=re.M)
    assert releases[0] == "[Unreleased]"
    assert releases[1] == f"[{__version__}] - 2026-12-07"
    for release in releases[1:]:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", release), release
    kinds = re.findall(r"^### (.+)$", text, flags=re.M)
    assert kinds and set(kinds) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds
    unreleased = text.split("## [Unreleased]\n", 1)[1].split("\n## ", 1)[0]
    assert not re.search(r"^- ", unreleased, flags=re.M)  # empty until something changes after the release
    entries = re.findall(r"^- .+$", text, flags=re.M)
    assert 10 <= len(entries) <= 40
    history = (r"\bissue \d+", r"(?<![\w/])#\d+\b", r"benchmarks/bench_", r"\bit used to\b", r"\bwas\b.*\binstead\b")
    for pattern in history:
        assert not re.search(pattern, text, flags=re.I), pattern
