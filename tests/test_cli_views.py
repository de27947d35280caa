"""bilipop.cli.views renders prediction results from their dataclasses (no dict on the way), and the dataclasses'
JSON keeps the documented keys in their documented order. No model is loaded: the results are built by hand."""

from __future__ import annotations

import json

from rich.console import Console

from bilipop.cli import views
from bilipop.prediction.explain import Explanation, TokenDrop
from bilipop.prediction.predict import Candidate, Prediction

PROBS = [0.1, 0.2, 0.4, 0.2, 0.1]


def _render(renderable) -> str:
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_prediction_lines_read_the_prediction_and_its_explanation():
    explanation = Explanation("covers/a.explain.png", [TokenDrop("相对论", 4, 0.25), TokenDrop("[red]", 0, -0.0625)])
    prediction = Prediction(label=2, label_name="medium", probabilities=PROBS, expected_class=2.0,
                            explanation=explanation)
    lines = views.prediction_lines(prediction)
    assert lines[0] == "[bold]class 2: medium[/]  (expected class 2.00)"
    assert lines[3] == f"  2 medium     {'█' * 12:<30}  40.0%"
    assert lines[6:] == ["cover heatmap: covers/a.explain.png",
                         "title tokens that mattered most (drop in the predicted class's probability):",
                         "  '相对论': +0.2500",
                         "  '\\[red]': -0.0625"]  # the user's text is escaped, not applied as markup
    assert len(views.prediction_lines(Prediction(2, "medium", PROBS, 2.0))) == 6  # no explanation, no lines for it


def test_prediction_json_keeps_its_keys_and_order():
    explanation = Explanation(None, [TokenDrop("光速", 2, 0.5)])
    data = Prediction(2, "medium", PROBS, 2.0, explanation).to_json()
    assert list(data) == ["label", "label_name", "probabilities", "expected_class", "explanation"]
    assert data["explanation"] == {"heatmap": None, "tokens": [{"token": "光速", "position": 2, "drop": 0.5}]}
    assert list(Prediction(2, "medium", PROBS, 2.0).to_json()) == ["label", "label_name", "probabilities",
                                                                   "expected_class"]
    json.dumps(data)  # plain JSON types only


def test_ranking_table_reads_candidates_and_json_keeps_its_keys():
    peaked = Prediction(3, "high", [0.0, 0.0, 0.1, 0.8, 0.1], 3.0)
    flat = Prediction(0, "very low", [0.4, 0.15, 0.15, 0.15, 0.15], 1.6)
    ranked = [Candidate("x/one.jpg", "标题一", peaked, rank=1, p_beats_next=0.875),
              Candidate("y/two.jpg", "[bold]二", flat, rank=2)]
    # the class nearest the expected class, not the argmax
    assert ranked[1].label == 2 and ranked[1].to_json()["label_name"] == "medium"
    text = _render(views.ranking_table(ranked))
    assert "2 combinations, best first" in text
    assert "3 high" in text and "3.00" in text and " 0  0 10 80 10" in text and "88%" in text
    assert "2 medium" in text and "1.60" in text and "40 15 15 15 15" in text and "–" in text
    assert "one.jpg" in text and "[bold]二" in text and "x/one.jpg" not in text
    assert list(ranked[1].to_json()) == ["rank", "cover", "title", "label", "label_name", "most_likely",
                                         "most_likely_name", "probabilities", "expected_class", "p_beats_next"]
    assert ranked[1].to_json()["most_likely_name"] == "very low"


def test_covers_of_the_same_name_in_two_folders_are_listed_with_their_paths():
    p = Prediction(2, "medium", PROBS, 2.0)
    text = _render(views.ranking_table([Candidate("x/a.jpg", "t", p, rank=1, p_beats_next=0.5),
                                        Candidate("y/a.jpg", "t", p, rank=2)]))
    assert "covers: #1 x/a.jpg; #2 y/a.jpg" in text
