"""Labels: fee-aware threshold, horizon, unlabelled tail, gap detection."""

from __future__ import annotations

import numpy as np
import pytest

from tinhieu.labels import (
    effective_threshold_pct,
    make_labels,
    previous_move_labels,
    spans_gap,
)


def test_threshold_is_never_below_the_round_trip_fee() -> None:
    assert effective_threshold_pct(0.05, 0.1) == pytest.approx(0.2)
    assert effective_threshold_pct(0.5, 0.1) == pytest.approx(0.5)
    # a 0.15% move is below 2 x 0.1% fee: NEUTRAL although threshold_pct asks for 0.05%
    close = np.array([100.0, 100.15, 100.0, 99.85, 100.0])
    assert list(make_labels(close, 1, 0.05, 0.1)[:-1]) == [0, 0, 0, 0]
    assert list(make_labels(close, 1, 0.05, 0.0)[:-1]) == [1, -1, -1, 1]


def test_horizon_and_unlabelled_tail() -> None:
    close = np.array([100.0, 100.0, 101.0, 100.0, 98.0, 98.0, 98.0])
    labels = make_labels(close, 2, 0.5, 0.1)
    # t=0: 101/100 -> UP; t=1: 100/100 -> NEUTRAL; t=2: 98/101 -> DOWN; t=3: 98/100 -> DOWN
    assert list(labels[:5]) == [1, 0, -1, -1, 0]
    assert np.isnan(labels[-2:]).all()
    assert labels.dtype == np.float64


def test_exact_threshold_is_neutral() -> None:
    close = np.array([100.0, 100.5, 100.0])
    assert make_labels(close, 1, 0.6, 0.0)[0] == 0
    assert make_labels(close, 1, 0.4, 0.0)[0] == 1


def test_previous_move_is_known_at_t() -> None:
    close = np.array([100.0, 102.0, 101.0, 99.0, 99.0])
    prev = previous_move_labels(close, 1, 0.5, 0.1)
    assert np.isnan(prev[0])
    assert list(prev[1:]) == list(make_labels(close, 1, 0.5, 0.1)[:-1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="horizon"):
        make_labels(np.ones(5), 0, 0.1, 0.1)
    with pytest.raises(ValueError, match="negative"):
        make_labels(np.ones(5), 1, -0.1, 0.1)


def test_spans_gap() -> None:
    ts = np.array([0, 60, 120, 300, 360, 420, 480]) * 1000  # gap between rows 2 and 3
    flags = spans_gap(ts, before=2, after=1, timeframe_ms=60_000)
    # row t covers rows t-2..t+1, so rows 2, 3 and 4 contain the step from row 2 to row 3
    assert list(flags) == [False, False, True, True, True, False, False]
    assert not spans_gap(ts[:3], before=5, after=5, timeframe_ms=60_000).any()
