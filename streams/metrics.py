"""``/metrics``: the worker's Prometheus metrics, on the worker's own web server.

Two sources in one registry (one scrape per worker):

* faust-streaming's own Prometheus sensor (``faust.sensors.prometheus``): messages in and
  out per topic, events, table operations, producer latency, commits, rebalances, end and
  committed offsets per partition, HTTP requests. Its series are named ``faust_*`` and its
  latencies are in milliseconds (the library's choice, kept as it is).
* the project's series, ``tinhieu_*``, in seconds and ``_total`` counters: candles in,
  signals by action, orders, dead letters, predict and candle-to-delivered latency, consumer
  lag per input partition, paper equity and the loaded model versions; and from monitoring
  (read at scrape time from the owned symbols' records): rolling live accuracy, balanced
  accuracy, BUY hit rate and calibration error per window and model, drift scores, the
  losing streak, active alerts, and alerts raised / cleared.

The agent calls the ``observe_*`` methods of :data:`metrics` with what it already has; the
arithmetic lives here. ``docs/MONITORING.md`` lists every series.
"""

from __future__ import annotations

from streams.app import app, runtime, settings  # first: the app must exist  # isort: skip

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import TP
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from streams.topics import MARKET_DATA
from streams.views import key_partition
from tinhieu.broker import position_value
from tinhieu.pipeline import Advanced

#: Prefix of faust-streaming's own series (fixed, so dashboards do not depend on the app id).
FAUST_PREFIX = "faust"

#: Predict latency per candle: incremental features + the ensemble, usually 0.3-2 ms.
PREDICT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 1.0)
#: Kafka time of a candle message -> its signals and orders delivered: ms live, minutes
#: while a replay or a back-fill is being worked off.
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0, 900.0)


class _ModelInfo(Collector):
    """``tinhieu_model_info{symbol,version} 1`` for every symbol with models loaded, read
    at scrape time so a promotion or a removed model shows without a candle."""

    def __init__(self, versions: Callable[[], Mapping[str, str]]) -> None:
        self._versions = versions

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "tinhieu_model_info",
            "Models loaded per symbol; the version label is the ensemble's member versions "
            "(algorithm:version,...). Always 1.",
            labels=["symbol", "version"],
        )
        for symbol, version in sorted(self._versions().items()):
            family.add_metric([symbol, version], 1.0)
        yield family


class _ConsumerLag(Collector):
    """``tinhieu_consumer_lag{topic,partition}``: messages not yet read, per assigned input
    partition (the figure ``/health`` shows), read at scrape time from Faust's monitor."""

    def __init__(self, offsets: Callable[[], Iterable[tuple[TP, int, int]]]) -> None:
        self._offsets = offsets

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "tinhieu_consumer_lag",
            "Messages behind the end of each assigned input partition (end - read - 1).",
            labels=["topic", "partition"],
        )
        for tp, end, read in self._offsets():
            family.add_metric([tp.topic, str(tp.partition)], float(max(0, end - read - 1)))
        yield family


class _PaperEquity(Collector):
    """``tinhieu_paper_equity{symbol}`` for the symbols whose partition this worker owns
    now: after a rebalance the previous owner stops reporting a value it no longer keeps."""

    def __init__(self, values: dict[str, float], owns: Callable[[str], bool]) -> None:
        self._values = values
        self._owns = owns

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "tinhieu_paper_equity",
            "Paper book value per symbol (cash + open position at the newest close), in the "
            "quote currency; from the worker that owns the symbol.",
            labels=["symbol"],
        )
        for symbol, value in sorted(self._values.items()):
            if self._owns(symbol):
                family.add_metric([symbol], value)
        yield family


#: Series of the monitoring summary (tinhieu.monitor.Monitors.summary), per symbol, model and
#: window: metric name -> (key in the quality figures, help).
QUALITY_SERIES = {
    "tinhieu_rolling_accuracy": ("accuracy", "Share of verdicts whose outcome matched, over "
                                 "the window (live, from signal outcomes)."),
    "tinhieu_rolling_balanced_accuracy": ("balanced_accuracy", "Mean per-class recall of the "
                                          "verdicts over the window."),
    "tinhieu_rolling_buy_hit_rate": ("buy_hit_rate", "Share of BUY verdicts that reached "
                                     "their take profit, over the window."),
    "tinhieu_rolling_calibration_error": ("calibration_error", "Expected calibration error "
                                          "of the verdicts' confidence, over the window."),
}


class _Monitoring(Collector):
    """Quality, drift, streak and active alerts of the owned symbols, at scrape time."""

    def __init__(self, summaries: Callable[[], Iterable[Mapping[str, object]]]) -> None:
        self._summaries = summaries

    def collect(self) -> Iterator[Metric]:
        quality = {name: GaugeMetricFamily(name, text, labels=["symbol", "model", "window"])
                   for name, (_, text) in QUALITY_SERIES.items()}
        psi = GaugeMetricFamily("tinhieu_drift_psi_max", "Largest population stability index "
                                "of a model feature: live window vs training reference.",
                                labels=["symbol"])
        pred = GaugeMetricFamily("tinhieu_drift_prediction_psi", "Population stability index "
                                 "of the share of each action vs training.", labels=["symbol"])
        over = GaugeMetricFamily("tinhieu_drift_features_over_threshold", "Model features "
                                 "whose PSI is over drift_psi_threshold.", labels=["symbol"])
        streak = GaugeMetricFamily("tinhieu_losing_streak", "Losing round trips in a row of "
                                   "the paper book.", labels=["symbol"])
        active = GaugeMetricFamily("tinhieu_alerts_active", "Alerts raised and not cleared.",
                                   labels=["symbol", "kind"])
        for summary in self._summaries():
            symbol = str(summary["symbol"])
            for window, models in dict(summary.get("quality") or {}).items():
                for model, figures in dict(models).items():
                    for name, (key, _) in QUALITY_SERIES.items():
                        value = dict(figures).get(key)
                        if isinstance(value, (int, float)):
                            quality[name].add_metric([symbol, model, window], float(value))
            drift = summary.get("drift")
            if isinstance(drift, Mapping):
                for family, key in ((psi, "max_psi"), (pred, "prediction_psi"),
                                    (over, "features_over_threshold")):
                    value = drift.get(key)
                    if isinstance(value, (int, float)):
                        family.add_metric([symbol], float(value))
            streak.add_metric([symbol], float(summary.get("losing_streak") or 0))  # type: ignore[arg-type]
            for alert in summary.get("alerts") or ():  # type: ignore[union-attr]
                active.add_metric([symbol, str(alert["kind"])], 1.0)
        yield from quality.values()
        yield from (psi, pred, over, streak, active)


class Metrics:
    """The project's Prometheus series, in their own registry.

    Parameters
    ----------
    registry : CollectorRegistry
        Where the series live (a fresh one per instance: tests build their own).
    model_versions : callable, optional
        ``symbol -> version`` of the loaded models, read at scrape time.
    partition_offsets : callable, optional
        ``(tp, end offset, read offset)`` of each assigned input partition, at scrape time.
    owns : callable, optional
        ``symbol -> bool``: this worker owns the symbol's partition now (default: always).
    monitoring : callable, optional
        The monitoring summaries of the owned symbols, at scrape time.
    process : bool
        Add the process, platform and GC collectors (CPU, memory, open files, Python GC).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        model_versions: Callable[[], Mapping[str, str]] | None = None,
        partition_offsets: Callable[[], Iterable[tuple[TP, int, int]]] | None = None,
        owns: Callable[[str], bool] | None = None,
        monitoring: Callable[[], Iterable[Mapping[str, object]]] | None = None,
        process: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.candles = Counter(
            "tinhieu_candles", "Valid closed candles taken by the candle agent.",
            ["symbol"], registry=r)
        self.signals = Counter(
            "tinhieu_signals", "Signals published, by action and by the reason there is no "
            "verdict (empty when the models decided).", ["symbol", "action", "reason"],
            registry=r)
        self.orders = Counter(
            "tinhieu_orders", "Paper broker fills published on the orders topic.",
            ["symbol", "side", "reason"], registry=r)
        self.dead_letters = Counter(
            "tinhieu_dead_letters", "Messages sent to dead_letters, by code.", ["code"],
            registry=r)
        self.predict_seconds = Histogram(
            "tinhieu_predict_seconds", "Features + ensemble per candle with a model verdict.",
            buckets=PREDICT_BUCKETS, registry=r)
        self.delivered_seconds = Histogram(
            "tinhieu_candle_to_delivered_seconds", "Kafka time of a batch's newest candle -> "
            "the batch's signals, orders and dead letters delivered.",
            buckets=DELIVERY_BUCKETS, registry=r)
        self.alerts = Counter(
            "tinhieu_alerts", "Alerts raised and cleared, by kind (symbol * for cluster-wide).",
            ["symbol", "kind", "state"], registry=r)
        self.outcomes = Counter(
            "tinhieu_signal_outcomes", "Verdicts whose outcome became known, by what was said "
            "and what happened.", ["symbol", "action", "label"], registry=r)
        self.equity: dict[str, float] = {}
        r.register(_PaperEquity(self.equity, owns or (lambda symbol: True)))
        if model_versions is not None:
            r.register(_ModelInfo(model_versions))
        if partition_offsets is not None:
            r.register(_ConsumerLag(partition_offsets))
        if monitoring is not None:
            r.register(_Monitoring(monitoring))

    def observe_symbol_batch(self, symbol: str, candles: int, result: Advanced) -> None:
        """One symbol's batch handled: ``candles`` valid candles taken, ``result`` the
        :class:`tinhieu.pipeline.Advanced` made of them (signals, fills, the new record)."""
        self.candles.labels(symbol).inc(candles)
        for signal in result.signals:
            self.signals.labels(symbol, signal["action"], signal["reason"]).inc()
            if not signal["reason"]:
                self.predict_seconds.observe(signal["latency_ms"] / 1000.0)
        for fill in result.fills:
            self.orders.labels(symbol, str(fill.side), str(fill.reason)).inc()
        for outcome in result.outcomes:
            self.outcomes.labels(symbol, outcome["action"], outcome["label"]).inc()
        book = result.record.get("book")
        if result.signals and book:
            close = float(result.signals[-1]["close"])
            self.equity[symbol] = float(book["cash"]) + position_value(book, close)

    def observe_alert(self, alert: Any) -> None:
        """An alert (``tinhieu.monitoring.alerts.Alert``) raised or cleared."""
        self.alerts.labels(alert.symbol or "*", alert.kind, alert.state).inc()

    def observe_dead_letters(self, codes: Iterable[str]) -> None:
        for code in codes:
            self.dead_letters.labels(code).inc()

    def observe_delivered(self, stamped_s: float, now_s: float) -> None:
        """A batch delivered at ``now_s``; its newest candle message was stamped at
        ``stamped_s`` (both unix seconds)."""
        self.delivered_seconds.observe(max(0.0, now_s - stamped_s))


def _model_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for symbol in settings.symbols:
        ensemble = runtime.models.current(symbol)
        if ensemble is not None:
            out[symbol] = ensemble.model_version
    return out


def _partition_offsets() -> list[tuple[TP, int, int]]:
    monitor = app.monitor
    return [
        (tp, int(end), int(monitor.tp_read_offsets.get(tp, -1)))
        for tp, end in list(monitor.tp_end_offsets.items())
        if not tp.topic.endswith("-changelog") and "__assignor" not in tp.topic
    ]


def _owns(symbol: str) -> bool:
    assigned = app.assignor.assigned_actives() if app.assignor else set()
    return TP(MARKET_DATA, key_partition(symbol)) in assigned


def _monitoring() -> list[Mapping[str, object]]:
    from tables.windows import symbol_to_window

    out = []
    for symbol in settings.symbols:
        if not _owns(symbol):
            continue
        record = symbol_to_window.get(symbol.encode())
        if record and record.get("signal"):
            out.append(runtime.monitors.summary(
                symbol, record.get("monitor"), runtime.models.current(symbol),
                int(record["signal"]["candle_time"])))
    return out


metrics = Metrics(model_versions=_model_versions, partition_offsets=_partition_offsets,
                  owns=_owns, monitoring=_monitoring, process=True)
# Faust's sensor becomes the app's monitor (a faust Monitor: /health still reads its offsets)
# and serves /metrics with the project's series in the same registry.
setup_prometheus_sensors(app, pattern="/metrics", registry=metrics.registry,
                         name_prefix=FAUST_PREFIX)
