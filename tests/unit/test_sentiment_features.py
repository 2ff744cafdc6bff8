"""tinhieu.sentiment_features: the as-of join of headlines onto candle closes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinhieu import news
from tinhieu.data import find_history_file, load_candles
from tinhieu.sentiment_features import (
    COLUMNS,
    HeadlineArrays,
    asof_sentiment,
    candle_sentiment,
    feature_names,
    load_history_headlines,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NEWS_FILE = SHARED / "news" / "crypto_news_headlines.csv.gz"
CANDLES_1H = SHARED / "binance-spot-1h"
SYMBOLS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")
HOUR = 3_600_000
HALF_LIFE_S = 21_600.0  # the default news_half_life_s

needs_data = pytest.mark.skipif(
    not (NEWS_FILE.exists() and CANDLES_1H.exists()), reason="../shared/data not present"
)


@pytest.fixture(scope="module")
def history() -> HeadlineArrays:
    return load_history_headlines(str(NEWS_FILE), SYMBOLS, "UTC")


def _opens(start_ms: int, n: int) -> np.ndarray:
    return start_ms + HOUR * np.arange(n, dtype=np.int64)


def test_headline_at_the_close_does_not_count_one_before_does() -> None:
    opens = np.array([0, HOUR], dtype=np.int64)  # candle 0 closes at HOUR
    at_close = HeadlineArrays.from_items([(HOUR, 0.8, ("BTC/USDT",))])
    f = candle_sentiment(opens, HOUR, at_close, "BTC/USDT", half_life_s=HALF_LIFE_S)
    assert f["sent_count_1h"].tolist() == [0.0, 1.0]
    assert f["sent_score"][0] == 0.0 and f["sent_mean_24h"][0] == 0.0
    # candle 1 closes one hour after the headline: half-life 6 h
    assert f["sent_score"][1] == pytest.approx(0.8 * 2 ** (-1 / 6), rel=1e-12)
    before = HeadlineArrays.from_items([(HOUR - 1, 0.8, ("BTC/USDT",))])
    g = candle_sentiment(opens, HOUR, before, "BTC/USDT", half_life_s=HALF_LIFE_S)
    assert g["sent_count_1h"].tolist() == [1.0, 0.0]  # [close - 1 h, close): out of the 2nd
    assert g["sent_count_24h"].tolist() == [1.0, 1.0]
    assert g["sent_mean_24h"].tolist() == [0.8, 0.8]
    assert list(f) == list(feature_names())


def test_symbol_stream_and_market_stream() -> None:
    h = HeadlineArrays.from_items([
        (10, 0.5, ("BTC/USDT",)), (20, -0.5, ("ETH/USDT",)), (30, 0.1, ()),
        (40, 0.3, ("BTC/USDT", "ETH/USDT")),
    ])
    f = candle_sentiment(np.array([0]), HOUR, h, "BTC/USDT", half_life_s=HALF_LIFE_S)
    assert f["sent_count_24h"][0] == 2 and f["mkt_count_24h"][0] == 4
    assert f["sent_mean_24h"][0] == pytest.approx(0.4)
    assert f["mkt_mean_24h"][0] == pytest.approx(0.1)
    assert len(h.mentioning(None)) == 1  # the live "*" key: no symbol mentioned


def test_unsorted_headlines_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        asof_sentiment(np.array([100]), np.array([5, 3]), np.array([0.1, 0.2]),
                       half_life_s=60)


@needs_data
def test_a_later_headline_never_changes_an_earlier_candle(history: HeadlineArrays) -> None:
    opens = _opens(int(history.published_ms[0]) - 5 * HOUR, 24 * 85)
    base = candle_sentiment(opens, HOUR, history, "BTC/USDT", half_life_s=HALF_LIFE_S)
    rng = np.random.default_rng(3)
    for t in (40, 700, 1500, opens.size - 2):
        close = int(opens[t]) + HOUR
        extra = [(close + int(d), float(s), ("BTC/USDT",) if k % 2 else ())
                 for k, (d, s) in enumerate(zip(rng.integers(0, 30 * 24 * HOUR, 200),
                                                rng.uniform(-1, 1, 200), strict=True))]
        extra.append((close, 1.0, ("BTC/USDT",)))  # exactly at the close: not before it
        items = [(int(p), float(s), sym) for p, s, sym in zip(
            history.published_ms, history.sentiment, history.symbols, strict=True)]
        more = HeadlineArrays.from_items(items + extra)
        got = candle_sentiment(opens, HOUR, more, "BTC/USDT", half_life_s=HALF_LIFE_S)
        for name in base:
            assert np.array_equal(got[name][: t + 1], base[name][: t + 1]), (name, t)
            assert not np.array_equal(got[name][t + 1:], base[name][t + 1:]), (name, t)


@needs_data
@pytest.mark.parametrize("symbol", ["BTC/USDT", "ETH/USDT", None])
def test_equals_the_live_state_at_every_candle_close(history: HeadlineArrays,
                                                     symbol: str | None) -> None:
    """Fold the headlines into the live per-key state in publication order (as the agent
    does with ``apply_headline``) and ask ``state_as_of`` at every 1h candle close."""
    candles = load_candles(find_history_file(CANDLES_1H, "BTC/USDT", "1h"),
                           int(history.published_ms[0]) - 3 * HOUR,
                           int(history.published_ms[-1]) + 30 * HOUR)
    opens = candles["timestamp"].to_numpy(np.int64)
    stream = history.mentioning(symbol)  # None: the "*" key (headlines naming no symbol)
    assert len(stream) > 20
    cols = asof_sentiment(opens + HOUR, stream.published_ms, stream.sentiment,
                          half_life_s=HALF_LIFE_S)
    state = None
    j = 0
    for i, close in enumerate((opens + HOUR).tolist()):
        while j < len(stream) and stream.published_ms[j] < close + HOUR:  # arrived late too
            state = news.apply_headline(state, int(stream.published_ms[j]),
                                        float(stream.sentiment[j]), f"h{j}",
                                        half_life_s=HALF_LIFE_S)
            j += 1
        live = news.state_as_of(state, close)
        assert cols["count_1h"][i] == live["count_1h"]
        assert cols["count_24h"][i] == live["count_24h"]
        assert cols["score"][i] == pytest.approx(live["score"], rel=1e-9, abs=1e-12)
        recent = (state or {"recent": []})["recent"]
        day = [s for t, s, _ in recent if close - 24 * HOUR <= t < close]
        assert cols["mean_24h"][i] == pytest.approx(float(np.mean(day)) if day else 0.0,
                                                    rel=1e-9, abs=1e-12)
    assert j == len(stream)


@needs_data
def test_history_file_is_read_like_news_replay(history: HeadlineArrays) -> None:
    assert len(history) == len({h.id for h in news.load_history(str(NEWS_FILE), "UTC").headlines})
    assert (np.diff(history.published_ms) >= 0).all()
    assert set(COLUMNS) == {"score", "count_1h", "count_24h", "mean_24h"}


@needs_data
def test_training_hook_appends_columns_on_the_same_rows(history: HeadlineArrays) -> None:
    """``extra_features`` adds columns, keeps the usable rows, and refuses to promote."""
    from tinhieu.registry import ModelRegistry
    from tinhieu.settings import Settings
    from tinhieu.training import TrainingError, prepare_dataset, train_symbol

    settings = Settings(timeframe="1h", max_holding_candles=24)
    df = load_candles(find_history_file(CANDLES_1H, "BTC/USDT", "1h"),
                      int(history.published_ms[0]) - 300 * HOUR,
                      int(history.published_ms[0]) + 400 * HOUR)
    cols = candle_sentiment(df["timestamp"].to_numpy(), HOUR, history, "BTC/USDT",
                            half_life_s=HALF_LIFE_S)
    import pandas as pd

    extra = pd.DataFrame(cols)
    plain = prepare_dataset(df, settings)
    more = prepare_dataset(df, settings, extra_features=extra)
    assert np.array_equal(plain.rows, more.rows)
    assert more.X.shape[1] == plain.X.shape[1] + len(feature_names())
    assert np.array_equal(more.X[:, : plain.X.shape[1]], plain.X)
    with pytest.raises(TrainingError, match="promote=False"):
        train_symbol(df, "BTC/USDT", settings, ModelRegistry(Path("/nonexistent")),
                     extra_features=extra)
