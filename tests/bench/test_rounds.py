"""Repeated measurements (`python -m bench --repeats N`): the round reported is the one whose
ratio is the median, and the report shows every round's ratio beside it."""

from __future__ import annotations

from bench.report import rounds_text
from bench.stats import median_index


def test_the_median_round_is_chosen_by_its_ratio_not_by_its_position() -> None:
    assert median_index([0.31, 0.52, 0.44]) == 2
    assert median_index([0.5]) == 0
    # an even count takes the lower middle; a round that failed (None) is left out
    assert median_index([0.40, None, 0.30, 0.50, 0.45]) == 0
    assert median_index([None, None]) is None


def test_the_report_shows_every_round_s_ratio_and_nothing_for_a_single_round() -> None:
    entry = {"rounds": [{"ratio": 0.4418}, {"ratio": 0.4241}, {"ratio": None}]}
    assert rounds_text(entry) == "median of 3 rounds (44.2 %, 42.4 %, —)"
    assert rounds_text({"rounds": [{"ratio": 0.5}]}) == ""
    assert rounds_text(None) == ""
