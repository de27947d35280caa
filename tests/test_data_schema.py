"""bilipop.data.schema: the names and checks every stage shares."""

import math

import pytest

from bilipop.data.schema import blank_title


@pytest.mark.parametrize("title", [None, math.nan, "", "   ", "\t\n", 3])
def test_blank_title_is_missing_not_text_or_only_whitespace(title):
    assert blank_title(title)


@pytest.mark.parametrize("title", ["标题", " a ", "0"])
def test_a_title_with_any_visible_character_is_not_blank(title):
    assert not blank_title(title)
