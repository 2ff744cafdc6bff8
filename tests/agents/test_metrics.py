"""streams.metrics: what one symbol's batch adds to the series, lag and model info read at
scrape time, and the app's monitor being Faust's Prometheus sensor."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from streams.app import app
from streams.metrics import Metrics, metrics
from tinhieu.pipeline import Advanced


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def signal(action: str, reason: str = "", latency_ms: float = 0.5, close: float = 100.0):
    return {"action": action, "reason": reason, "latency_ms": latency_ms, "close": close}


def test_a_batch_counts_candles_signals_orders_and_sets_equity() -> None:
    m = Metrics(CollectorRegistry())
    book = {"cash": 500.0, "qty": 2.0}
    result = Advanced(
        record={"book": book},
        signals=[signal("BUY"), signal("NEUTRAL", "warming_up"), signal("BUY", close=110.0)],
        fills=[SimpleNamespace(side="BUY", reason="signal")],
    )
    m.observe_symbol_batch("BTC/USDT", 4, result)  # 4 candles, one of them redelivered
    assert value(m, "tinhieu_candles_total", symbol="BTC/USDT") == 4
    assert value(m, "tinhieu_signals_total", symbol="BTC/USDT", action="BUY", reason="") == 2
    assert value(m, "tinhieu_signals_total", symbol="BTC/USDT", action="NEUTRAL",
                 reason="warming_up") == 1
    assert value(m, "tinhieu_orders_total", symbol="BTC/USDT", side="BUY", reason="signal") == 1
    assert value(m, "tinhieu_predict_seconds_count") == 2  # only candles with a verdict
    assert value(m, "tinhieu_predict_seconds_sum") == 0.001
    assert value(m, "tinhieu_paper_equity", symbol="BTC/USDT") == 500.0 + 2.0 * 110.0


def test_dead_letters_and_delivery_latency_in_seconds() -> None:
    m = Metrics(CollectorRegistry())
    m.observe_dead_letters(["decode_error", "decode_error", "out_of_order"])
    m.observe_delivered(stamped_s=100.0, now_s=100.25)
    m.observe_delivered(stamped_s=100.0, now_s=99.0)  # a clock behind the broker: 0, not < 0
    assert value(m, "tinhieu_dead_letters_total", code="decode_error") == 2
    assert value(m, "tinhieu_dead_letters_total", code="out_of_order") == 1
    assert value(m, "tinhieu_candle_to_delivered_seconds_sum") == 0.25
    assert value(m, "tinhieu_candle_to_delivered_seconds_bucket", le="0.25") == 2


def test_equity_is_reported_only_for_the_symbols_this_worker_owns() -> None:
    owned = {"BTC/USDT"}
    m = Metrics(CollectorRegistry(), owns=lambda symbol: symbol in owned)
    book = {"cash": 1000.0, "qty": 0.0}
    for symbol in ("BTC/USDT", "ETH/USDT"):
        m.observe_symbol_batch(symbol, 1, Advanced(record={"book": book},
                                                   signals=[signal("NEUTRAL", "no_model")]))
    assert value(m, "tinhieu_paper_equity", symbol="BTC/USDT") == 1000.0
    assert value(m, "tinhieu_paper_equity", symbol="ETH/USDT") is None
    owned.clear()  # BTC's partition moved to another worker
    assert value(m, "tinhieu_paper_equity", symbol="BTC/USDT") is None


def test_model_info_and_lag_are_read_at_scrape_time() -> None:
    versions = {"BTC/USDT": "rf:1,svm:1,lr:1"}
    offsets = [(TP("market_data", 0), 50, 9)]
    m = Metrics(CollectorRegistry(), model_versions=lambda: versions,
                partition_offsets=lambda: offsets)
    assert value(m, "tinhieu_model_info", symbol="BTC/USDT", version="rf:1,svm:1,lr:1") == 1
    assert value(m, "tinhieu_consumer_lag", topic="market_data", partition="0") == 40
    versions["BTC/USDT"] = "rf:2,svm:2,lr:2"  # promoted: the old version is gone at once
    offsets[:] = [(TP("market_data", 0), 50, 49)]
    assert value(m, "tinhieu_model_info", symbol="BTC/USDT", version="rf:1,svm:1,lr:1") is None
    assert value(m, "tinhieu_model_info", symbol="BTC/USDT", version="rf:2,svm:2,lr:2") == 1
    assert value(m, "tinhieu_consumer_lag", topic="market_data", partition="0") == 0


def test_the_app_serves_faust_and_project_series_from_one_registry() -> None:
    assert isinstance(app.monitor, PrometheusMonitor)
    text = generate_latest(metrics.registry).decode()
    for name in ("faust_messages_received_total", "tinhieu_candles_total",
                 "tinhieu_model_info", "tinhieu_consumer_lag", "process_resident_memory_bytes"):
        assert name in text, name
    assert "/metrics" in app.web.views
