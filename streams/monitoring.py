"""Monitoring on the worker: alerts out, ``/monitoring/{symbol}``, cluster-wide conditions.

The candle agent folds each symbol's batch into its monitoring state
(:class:`tinhieu.monitor.Monitors`, kept in the symbol's record) and hands the alerts it
raised or cleared to :func:`alert_messages`. Each alert is

* sent to the ``alerts`` topic (typed ``models.records.Alert``, keyed by its symbol, ``*``
  for a cluster-wide one) with the batch's other messages, before the record moves on;
* logged with the tag ``[CANH BAO]`` (in the log language);
* counted in ``tinhieu_alerts_total`` and shown by ``/monitoring/{symbol}``,
  ``/api/v1/monitoring/{symbol}``, the dashboard and the Discord bot (which reads the topic).

A timer on every worker checks what is not a symbol's: its partitions that stopped moving
with a lag, and (on the leader, which polls the exchange) an unreachable exchange.
"""

from __future__ import annotations

from streams.app import app, runtime, settings  # first: the app must exist  # isort: skip

import logging
import time
from collections.abc import Awaitable, Iterable
from typing import Any

from faust.web import Request, Response, View

from streams.api import API, _for_symbol, _not_yet
from streams.metrics import metrics
from streams.topics import ALERTS, publish_json
from streams.views import health_sections, partition_lag, routed
from tables.windows import symbol_to_window
from tinhieu.monitor import shadow_summary
from tinhieu.monitoring.alerts import Alert, AlertBook, format_alert

log = logging.getLogger("tinhieu.monitoring")
CLUSTER_CHECK_S = 10.0


async def alert_messages(alerts: Iterable[Alert]) -> list[Awaitable[Any]]:
    """Send, log and count ``alerts``; return the delivery futures to await."""
    pending: list[Awaitable[Any]] = []
    for alert in alerts:
        data = alert.to_dict()
        pending.append(await publish_json(ALERTS, alert.symbol or "*", data))
        level = logging.WARNING if alert.state == "raised" else logging.INFO
        log.log(level, "%s", format_alert(alert, settings.log_language))
        metrics.observe_alert(alert)
    return pending


def _summary(symbol: str) -> dict[str, Any] | None:
    record = symbol_to_window.get(symbol.encode())
    if not record or not record.get("signal"):
        return None
    now_ms = int(record["signal"]["candle_time"])
    return runtime.monitors.summary(symbol, record.get("monitor"),
                                    runtime.models.current(symbol), now_ms,
                                    record.get("shadow"))


@app.page("/monitoring/{symbol}")
class MonitoringView(View):
    """Rolling live quality beside the walk-forward figures, drift, alerts of a symbol."""

    async def get(self, request: Request, symbol: str) -> Response:
        return await routed(self, request, symbol_to_window.name, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        body = _summary(symbol)
        if body is None:
            return self.json({"error": f"no signal for {symbol} yet", "symbol": symbol},
                             status=404)
        return self.json(body)


@app.page("/monitoring/{base}/{quote}")
class MonitoringSlashView(MonitoringView):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


@app.page(API + "/monitoring/{symbol}")
class MonitoringApi(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await _for_symbol(self, request, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        body = _summary(symbol)
        return _not_yet(self, "monitoring data", symbol) if body is None else self.json(body)


@app.page(API + "/monitoring/{base}/{quote}")
class MonitoringSlashApi(MonitoringApi):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


@app.page("/models/{symbol}")
class ModelsView(View):
    """The symbol's champion and challenger: aliases, loaded versions, and the shadow's
    comparison on the same candles (trades, after-fee return, hit rate, calibration)."""

    async def get(self, request: Request, symbol: str) -> Response:
        return await routed(self, request, symbol_to_window.name, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        record = symbol_to_window.get(symbol.encode()) or {}
        status = runtime.models.status()
        champion = runtime.models.current(symbol)
        summary = _summary(symbol) or {}
        return self.json({
            "symbol": symbol,
            "aliases": status["aliases"].get(symbol, {}),
            "champion": getattr(champion, "model_version", None),
            "challenger": status["shadow"].get(symbol),
            "missing": status["missing"].get(symbol),
            "shadow_missing": status["shadow_missing"].get(symbol),
            "shadow": shadow_summary(record.get("shadow")),
            "walk_forward": summary.get("walk_forward"),
            "quality": summary.get("quality"),
        })


@app.page("/models/{base}/{quote}")
class ModelsSlashView(ModelsView):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


# --- cluster-wide conditions -------------------------------------------------------------------
cluster_alerts = AlertBook.from_dict(None, clear_after=settings.alert_clear_after)


def cluster_conditions() -> dict[str, tuple[bool, float, float]]:
    """This worker's stalled input partitions and, on the leader, the exchange."""
    lag = partition_lag()
    stalled = sum(1 for p in lag.values() if p["stalled"])
    out = {"partition_stalled": (stalled > 0, float(stalled), 0.0)}
    exchange = health_sections.get("exchange")
    if exchange is not None:
        try:
            status = exchange().get("status")
        except Exception:  # noqa: BLE001 - a broken section is /health's business
            status = None
        out["exchange_unreachable"] = (status in ("unreachable", "failing"), 1.0, 0.0)
    return out


@app.timer(CLUSTER_CHECK_S, name="check_cluster_alerts")
async def check_cluster_alerts() -> None:
    alerts = cluster_alerts.evaluate("", cluster_conditions(), int(time.time() * 1000))
    for future in await alert_messages(alerts):
        await future


def _alerts_section() -> dict[str, Any]:
    return {"cluster": [a.to_dict() for a in cluster_alerts.active()]}


health_sections["alerts"] = _alerts_section
