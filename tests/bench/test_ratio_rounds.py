"""bench.ratio_rounds reports each round's ratio and their median (what the numbers mean, not how fast anything is)."""

from __future__ import annotations

from bench.ratio_rounds import summary


def test_ratios_and_medians():
    rounds = [
        {"gateway": 9000.0, "baseline": 30000.0},
        {"gateway": 8000.0, "baseline": 12000.0},
        {"gateway": 6000.0, "baseline": 15000.0},
    ]
    result = summary(rounds)
    assert result["ratios_percent"] == [30.0, 66.7, 40.0]
    assert result["median_ratio_percent"] == 40.0
    assert (result["median_gateway"], result["median_baseline"]) == (8000.0, 15000.0)


def test_a_round_without_a_baseline_has_no_ratio():
    result = summary([{"gateway": 10.0, "baseline": 0.0}, {"gateway": 5.0, "baseline": 10.0}])
    assert result["ratios_percent"] == [50.0]
    assert result["median_ratio_percent"] == 50.0
    assert summary([{"gateway": 1.0, "baseline": 0.0}])["median_ratio_percent"] is None
