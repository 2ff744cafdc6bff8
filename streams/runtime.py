"""The worker's runtime objects: what agents share besides tables (no module globals).

One :class:`Runtime` is built next to the app (``streams.app.runtime``) and handed to what
needs it: the model cache, the trade-log writer and the latency samples shown on ``/health``.
Blocking work lives here behind coroutines that run it off the event loop: SQLite writes on
one dedicated thread (SQLite wants one writer), model loading in the default executor.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tinhieu.ensemble import parse_weights
from tinhieu.labels import label_settings
from tinhieu.monitor import Monitors
from tinhieu.registry import open_registry
from tinhieu.settings import Settings
from tinhieu.signals import ModelCache
from tinhieu.tradelog import TradeLog

T = TypeVar("T")
log = logging.getLogger("tinhieu.runtime")


class LatencySamples:
    """The last ``size`` latencies in ms, summarised as p50/p99 for /health."""

    def __init__(self, size: int = 2000) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self._values.append(ms)

    def summary(self) -> dict[str, Any]:
        if not self._values:
            return {}
        ordered = sorted(self._values)
        cuts = statistics.quantiles(ordered, n=100) if len(ordered) > 1 else ordered * 99
        return {"p50_ms": round(cuts[49], 4), "p99_ms": round(cuts[98], 4),
                "samples": len(ordered)}


class Runtime:
    """Per-worker shared objects; built once by ``streams.app``."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock  # unix seconds: the one clock of the worker (tests pass their own)
        self.models = ModelCache(
            open_registry(settings),
            weights=parse_weights(settings.ensemble_weights),
            min_confidence=settings.min_confidence,
        )
        # The label rule of the training labels, applied forward to every verdict live.
        self.label_params = label_settings(settings)
        self.monitors = Monitors(settings)  # quality, drift and alerts of the owned symbols
        self.models_loaded = asyncio.Event()
        self._refresh_lock = asyncio.Lock()
        self.predict_latency = LatencySamples()
        # Kafka time stamp of a batch's newest candle -> the agent starts on the batch, and
        # -> the batch's signals and orders are delivered (live, a batch is one candle).
        self.intake_latency = LatencySamples()
        self.delivery_latency = LatencySamples()
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tradelog")
        self._decisions: set[asyncio.Future[None]] = set()
        self._trade_log: TradeLog | None = None

    # --- models -----------------------------------------------------------------------
    async def refresh_models(self) -> None:
        """Check the registry for every symbol and (re)load what changed, off the loop.

        One refresh at a time (the start-up load and the timer may meet): the cache is
        not meant for two writer threads."""
        async with self._refresh_lock:
            await self._refresh_models()

    async def _refresh_models(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.models.refresh_all, self.settings.symbols)
        except Exception:  # noqa: BLE001 - a registry that cannot be read: retried next time
            log.exception("model registry %s could not be read", self.settings.models_path)
        finally:  # symbols without models get NEUTRAL signals; the agent is never held back
            self.models_loaded.set()

    # --- the shadow's decisions ------------------------------------------------------------
    def decide(self, symbol: str, version: str, verdict: dict[str, Any], at_ms: int) -> None:
        """Apply the shadow's verdict on the challenger off the loop (a task): MLflow (alias
        change or a note on the version, actor ``shadow``) and the trade log
        (``model_decisions``), then reload the models when the champion changed."""
        task = asyncio.ensure_future(self._decide(symbol, version, verdict, at_ms))
        self._decisions.add(task)
        task.add_done_callback(self._decisions.discard)

    async def _decide(self, symbol: str, version: str, verdict: dict[str, Any],
                      at_ms: int) -> None:
        decision = verdict["decision"]
        if decision == "promote" and not self.settings.promotion_auto:
            decision = "promote_suggested"  # logged; the aliases stay as they are
        reason = str(verdict["reason"])
        evidence = {k: verdict.get(k) for k in ("champion", "challenger", "edge_pct",
                                                "margin_pct", "min_outcomes", "min_trades")}
        log.warning("[MO HINH] %s: challenger %s: %s (%s)", symbol, version, decision, reason)
        loop = asyncio.get_running_loop()
        record = getattr(self.models.registry, "record_decision", None)
        try:
            if record is not None:
                await loop.run_in_executor(
                    None, lambda: record(symbol, version, decision, reason, actor="shadow"))
            await self.trade_log(lambda db: db.record_decision(
                symbol, at_ms, version, decision, "shadow", reason, evidence))
        except Exception:  # noqa: BLE001 - logged; the shadow decides again later
            log.exception("%s: the decision on challenger %s could not be recorded", symbol,
                          version)
            return
        if decision == "promote":
            await self.refresh_models()

    # --- trade log ----------------------------------------------------------------------
    def _open_trade_log(self) -> TradeLog:
        if self._trade_log is None:
            self._trade_log = TradeLog(self.settings.trade_db_path)
        return self._trade_log

    async def trade_log(self, work: Callable[[TradeLog], T]) -> T:
        """Run ``work(trade_log)`` on the trade log's own thread and wait for it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._db_thread, lambda: work(self._open_trade_log())
        )

    def close(self) -> None:
        """Close the trade log (on its thread) and stop the thread."""
        if self._trade_log is not None:
            self._db_thread.submit(self._trade_log.close).result(timeout=10)
            self._trade_log = None
        self._db_thread.shutdown(wait=True)


def dump_tasks() -> None:
    """Log the stack of every asyncio task of the running loop (``kill -USR2 <pid>``): what
    each agent, timer and web request is waiting for, when a worker seems stuck."""
    import io

    for task in asyncio.all_tasks():
        out = io.StringIO()
        task.print_stack(limit=12, file=out)
        log.warning("task %s:\n%s", task.get_name(), out.getvalue())
