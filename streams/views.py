"""Faust web views: inspect the tables on whichever worker owns the key.

``GET /health``; ``GET /windows/{symbol}`` (``BTC-USDT``, ``BTCUSDT``, ``btc`` or
``/windows/BTC/USDT``). A request for a key owned by another worker is forwarded to it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.partitioner import murmur2
from faust.exceptions import SameNode
from faust.types import TP
from faust.web import Request, Response, View
from yarl import URL

from streams.app import app, runtime, settings
from tables.windows import symbol_to_window
from tinhieu.candles import window_json
from tinhieu.symbols import UnknownSymbolError, normalize

STARTED_AT = time.time()

# Extra sections of /health, filled in by other modules (models loaded, lag, ...).
health_sections: dict[str, Callable[[], Any]] = {
    "models": runtime.models.status,
    "predict_latency": runtime.predict_latency.summary,
    "candle_to_agent_latency": runtime.intake_latency.summary,
    "candle_to_delivered_latency": runtime.delivery_latency.summary,
}


def unknown_symbol(view: View, exc: UnknownSymbolError) -> Response:
    return view.json({"error": str(exc), "supported": list(exc.supported)}, status=404)


async def routed(
    view: View,
    request: Request,
    table_name: str,
    raw_symbol: str,
    local: Callable[[str], Awaitable[Response]],
) -> Response:
    """Answer for ``raw_symbol`` here if this worker owns it, else forward to the owner."""
    try:
        symbol = normalize(raw_symbol, settings.symbols)
    except UnknownSymbolError as exc:
        return unknown_symbol(view, exc)
    try:
        owner = owner_url(table_name, symbol)
        if owner is None or owner.rstrip("/") == str(app.conf.canonical_url).rstrip("/"):
            raise SameNode()
        return await app.router._route_req(URL(owner), view.web, request)
    except SameNode:
        return await local(symbol)
    except Exception as exc:  # owner unknown during a rebalance, or unreachable
        return view.json(
            {"error": f"no worker can answer for {symbol} right now: {exc}", "retry": True},
            status=503,
        )


def key_partition(symbol: str) -> int:
    """The partition of ``symbol`` in every topic and table: Kafka's default partitioner
    (murmur2 of the raw key bytes), as used by the producers."""
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % settings.partitions


def owner_url(table_name: str, symbol: str) -> str | None:
    """URL of the worker that owns ``symbol`` in ``table_name`` (None: not known yet).

    Computed from the assignment rather than asking the producer for the changelog
    topic's metadata, which it lacks for a table no one has written to yet."""
    changelog = app.tables[table_name].changelog_topic.get_topic_name()
    tps_url = getattr(app.assignor, "_tps_url", {})
    url = tps_url.get(TP(changelog, key_partition(symbol)))
    return None if url is None else str(url)


@app.page("/windows/{symbol}")
class WindowView(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await routed(self, request, symbol_to_window.name, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        record = symbol_to_window.get(symbol.encode())
        if not record or not record["window"].get("candles"):
            return self.json(
                {"error": f"no candles for {symbol} yet", "symbol": symbol}, status=404
            )
        return self.json(window_json(record["window"]))


@app.page("/windows/{base}/{quote}")
class WindowSlashView(WindowView):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


STALL_AFTER_S = 30.0
_progress: dict[str, tuple[int, float]] = {}  # "topic[p]" -> (read offset, when it moved)


async def broker_reachable() -> dict[str, Any]:
    """Can this worker open a TCP connection to a bootstrap server right now?"""
    import asyncio

    from tinhieu.kafka_io import bootstrap_servers

    for server in bootstrap_servers(settings.broker_url):
        host, _, port = server.rpartition(":")
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), timeout=1.0
            )
            writer.close()
            return {"url": settings.broker_url, "reachable": True}
        except (OSError, ValueError, TimeoutError):
            continue
    return {"url": settings.broker_url, "reachable": False}


def partition_lag() -> dict[str, Any]:
    """Per assigned input partition: end offset, last read offset, lag, stalled."""
    monitor = app.monitor
    now = time.monotonic()
    out: dict[str, Any] = {}
    for tp, end in list(monitor.tp_end_offsets.items()):
        if tp.topic.endswith("-changelog") or "__assignor" in tp.topic:
            continue
        name = f"{tp.topic}[{tp.partition}]"
        read = monitor.tp_read_offsets.get(tp, -1)
        lag = max(0, int(end) - int(read) - 1)
        last = _progress.get(name)
        if last is None or last[0] != read:
            _progress[name] = (read, now)
            last = _progress[name]
        out[name] = {
            "end": int(end),
            "read": int(read),
            "lag": lag,
            "stalled": lag > 0 and now - last[1] > STALL_AFTER_S,
        }
    return out


def last_candles() -> dict[str, Any]:
    """Newest candle time per symbol held by this worker's windows."""
    out: dict[str, Any] = {}
    for symbol in settings.symbols:
        record = symbol_to_window.get(symbol.encode())
        if record and record["window"].get("candles"):
            out[symbol] = int(record["window"]["candles"][-1][0])
    return out


@app.page("/health")
class HealthView(View):
    async def get(self, request: Request) -> Response:
        assignment = app.assignor.assigned_actives() if app.assignor else set()
        body: dict[str, Any] = {
            "status": "ok",
            "app_id": settings.app_id,
            "worker": str(app.conf.canonical_url),
            "uptime_s": round(time.time() - STARTED_AT, 1),
            "symbols": list(settings.symbols),
            "assigned": sorted(f"{tp.topic}[{tp.partition}]" for tp in assignment),
            "standbys": sorted(
                f"{tp.topic}[{tp.partition}]"
                for tp in (app.assignor.assigned_standbys() if app.assignor else set())
            ),
            "rebalancing": bool(app.rebalancing),
            "broker": await broker_reachable(),
            "lag": partition_lag(),
            "last_candle": last_candles(),
        }
        if any(p["stalled"] for p in body["lag"].values()):
            body["status"] = "stalled"
        if not body["broker"]["reachable"]:
            body["status"] = "broker_unreachable"
        for name, section in health_sections.items():
            try:
                body[name] = section()
            except Exception as exc:  # a broken section must not hide the others
                body[name] = {"error": str(exc)}
        exchange = body.get("exchange")
        if body["status"] == "ok" and isinstance(exchange, dict):
            if exchange.get("status") in ("unreachable", "failing"):
                body["status"] = "exchange_" + str(exchange["status"])
        return self.json(body)


def _book(symbol: str) -> dict[str, Any] | None:
    record = symbol_to_window.get(symbol.encode())
    return record.get("book") if record else None


@app.page("/signals/{symbol}")
class SignalView(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await routed(self, request, symbol_to_window.name, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        record = symbol_to_window.get(symbol.encode())
        signal = record.get("signal") if record else None
        if not signal:
            return self.json(
                {"error": f"no signal for {symbol} yet", "symbol": symbol}, status=404
            )
        return self.json(signal)


@app.page("/positions/{symbol}")
class PositionView(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await routed(self, request, symbol_to_window.name, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        book = _book(symbol)
        if not book:
            return self.json(
                {"error": f"no position for {symbol} yet", "symbol": symbol}, status=404
            )
        return self.json(book)


@app.page("/positions")
class PositionsView(View):
    """Every symbol's book, each asked from the worker that owns it."""

    async def get(self, request: Request) -> Response:
        books: dict[str, Any] = {}
        for symbol in settings.symbols:
            owner = (owner_url(symbol_to_window.name, symbol) or "").rstrip("/")
            if not owner or owner == str(app.conf.canonical_url).rstrip("/"):
                books[symbol] = _book(symbol)
                continue
            try:
                url = f"{owner}/positions/{symbol.replace('/', '-')}"
                auth = request.headers.get("Authorization")  # the caller's token, passed on
                headers = {"Authorization": auth} if auth else None
                async with app.http_client.get(url, timeout=5, headers=headers) as resp:
                    books[symbol] = await resp.json() if resp.status == 200 else None
            except Exception as exc:
                books[symbol] = {"error": f"worker {owner} did not answer: {exc}"}
        return self.json({"positions": books})
