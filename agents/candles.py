"""``process_candles``: the agent that owns each symbol's partition of ``market_data``.

closed candle -> window -> features -> ensemble -> Signal -> broker (risk rules) -> orders,
with one record per symbol in ``symbol_to_window`` (window, features, newest signal, book).

Candles are taken in batches (what is already queued, at most ``batch_max_candles``, no
timer: agents/batching.py), grouped by symbol, and each symbol's batch goes through
:func:`tinhieu.pipeline.advance`: one model call per symbol and batch, then the broker's
rules (:func:`tinhieu.broker.step`, the function the backtest runs) over the stream of that
symbol's signals, one signal per closed candle. Effects, in this order, so that a crash at
any point repeats work and never loses it:

1. every signal, order, signal outcome and dead letter of the batch is sent and its
   delivery awaited;
2. the fills, positions and equity points go to the SQLite trade log (its own thread);
3. then each symbol's record is written, once.

A re-delivered candle (at or before the record's source offset) was fully handled before the
record moved past it and is skipped; the record is written again anyway, since the local
store may be ahead of the changelog after a crash. Orders re-sent after a crash carry the
same deterministic id, which consumers and the trade log's UNIQUE constraint treat as one.

Any message that cannot be processed, for whatever reason, becomes a dead letter
(``internal_error`` with the exception for the unexpected) and the agent goes on with the
next one: nothing crashes the agent or blocks a symbol.
"""

from __future__ import annotations

from streams.app import app, runtime, settings  # first: the app must exist  # isort: skip

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from faust.types import EventT

from agents.batching import batches
from agents.deadletter import send_dead_letter
from streams.metrics import metrics
from streams.monitoring import alert_messages
from streams.topics import (
    ORDERS,
    SIGNAL_OUTCOMES,
    SIGNALS,
    SIGNALS_SHADOW,
    market_data_raw_topic,
    publish_json,
)
from tables import read_for_event, write_for_event
from tables.windows import symbol_to_window
from tinhieu import i18n
from tinhieu.broker import RiskConfig
from tinhieu.candles import CandleError, ValidCandle, candle_from_message
from tinhieu.outcomes import outbox
from tinhieu.pipeline import Advanced, Rejected, advance
from tinhieu.shadow import maybe_decide, shadow_advance
from tinhieu.tradelog import TradeLog

log = logging.getLogger("tinhieu.candles")
AGENT = "process_candles"
risk = RiskConfig.from_settings(settings)

i18n.register(
    {
        "window_gap": (
            i18n.TAGS["warn"],
            "{symbol}: thiếu {missing} nến giữa {after} và {before} (đã ghi nhận, không tự điền)",
            "{symbol}: {missing} candles missing between {after} and {before} "
            "(recorded, not filled)",
        ),
        "model_error": (
            i18n.TAGS["error"],
            "{symbol}: mô hình lỗi khi dự đoán ({error}); tín hiệu NEUTRAL cho {count} nến",
            "{symbol}: the models failed to predict ({error}); NEUTRAL for {count} candles",
        ),
        "broker.fill": (
            i18n.TAGS["order"],
            "{symbol} {side} {amount:.6f} @ {price:.4f} ({reason}, tin cậy {confidence:.0%}) "
            "id {id}",
            "{symbol} {side} {amount:.6f} @ {price:.4f} ({reason}, confidence "
            "{confidence:.0%}) id {id}",
        ),
    }
)


def _internal(exc: BaseException) -> tuple[str, str]:
    return "internal_error", f"{type(exc).__name__}: {exc}"[:2000]


def _decode(event: EventT) -> ValidCandle:
    timeframe_ms = settings.timeframe_ms
    return candle_from_message(
        event.message.key,
        event.value,
        settings.symbols,
        timeframe_ms,
        now_ms=int(runtime.clock() * 1000),
        future_tolerance_ms=int(settings.future_tolerance_timeframes * timeframe_ms),
        max_bytes=settings.max_message_bytes,
    )


def _advance(symbol: str, record: Any, items: Sequence[tuple[EventT, ValidCandle]],
             ensemble: Any) -> Advanced:
    return advance(
        record,
        symbol,
        [(candle, event.message.offset) for event, candle in items],
        ensemble,
        risk,
        window_size=settings.window_size,
        timeframe_ms=settings.timeframe_ms,
        clock=runtime.clock,
        label_params=runtime.label_params,
    )


def _advance_one_by_one(
    symbol: str, record: Any, items: Sequence[tuple[EventT, ValidCandle]], ensemble: Any
) -> Advanced | None:
    """Slow path after an unexpected error in a batch: each candle alone, so only the one
    that fails is refused (``internal_error``) and every other candle still counts.
    ``None`` when no candle could be applied to a symbol that had no record yet."""
    result: Advanced | None = None
    merged = Advanced(record=record)
    for index, item in enumerate(items):
        try:
            one = _advance(symbol, result.record if result else record, [item], ensemble)
        except Exception as exc:  # noqa: BLE001
            merged.rejected.append(Rejected(index, *_internal(exc)))
            continue
        merged.rejected.extend(Rejected(index, r.code, r.reason) for r in one.rejected)
        merged.signals.extend(one.signals)
        merged.fills.extend(one.fills)
        merged.equity.extend(one.equity)
        merged.outcomes.extend(one.outcomes)
        merged.rows.extend(one.rows)
        merged.gaps.extend(one.gaps)
        merged.model_error = one.model_error or merged.model_error
        result = one
    if result is None:
        return merged if record else None
    merged.record = result.record
    return merged


async def _shadow(symbol: str, record: Any, result: Advanced) -> tuple[list[Any], list[Any]]:
    """The challenger on the same candles (tinhieu.shadow): its signals to signals.shadow,
    its book in the record; the promotion decision when the
    evidence is there. Returns the delivery futures and the challenger's outcomes. The
    shadow never stops the champion: a failure is logged and the shadow left as it was."""
    challenger = runtime.models.challenger(symbol) if settings.shadow_enabled else None
    before = (record or {}).get("shadow")
    if challenger is None and not before:
        return [], []
    try:
        shadowed = shadow_advance(before, symbol, result.signals, result.rows, challenger,
                                  runtime.models.challenger_version(symbol), risk,
                                  runtime.label_params, result.outcomes)
        verdict = None
        if shadowed.state is not None:
            verdict = maybe_decide(shadowed.state, min_outcomes=settings.promotion_min_outcomes,
                                   min_trades=settings.promotion_min_trades,
                                   margin_pct=settings.promotion_margin_pct)
    except Exception:  # noqa: BLE001
        log.exception("%s: the shadow failed on this batch (the champion goes on)", symbol)
        return [], []
    result.record["shadow"] = shadowed.state
    pending = [await publish_json(SIGNALS_SHADOW, symbol, s) for s in shadowed.signals]
    if verdict is not None and shadowed.state is not None:
        runtime.decide(symbol, shadowed.state["version"], verdict,
                       int(result.signals[-1]["candle_time"]))
    return pending, shadowed.outcomes


async def _send_outcomes(symbol: str, record: Any, result: Advanced,
                         shadow_outcomes: Sequence[Any]) -> list[Any]:
    """The batch's outcomes (champion, then challenger) to the symbol's outbox in its record;
    ``signal_outcomes`` gets one message once the oldest waited ``outcome_flush_candles``."""
    if not result.signals:
        return []
    waiting, messages = outbox(
        (record or {}).get("outbox"), [*result.outcomes, *shadow_outcomes],
        int(result.signals[-1]["candle_time"]),
        (settings.outcome_flush_candles - 1) * settings.timeframe_ms)
    result.record["outbox"] = waiting
    return [await publish_json(SIGNAL_OUTCOMES, symbol, {"symbol": symbol, "outcomes": batch})
            for batch in messages]


async def _monitor(symbol: str, record: Any, result: Advanced, ensemble: Any,
                   shadow_outcomes: Sequence[Any] = ()) -> list[Any]:
    """Fold the batch into the symbol's monitoring state (in its record); send the alerts.
    Monitoring never stops trading: a failure is logged and the state left as it was."""
    try:
        state, alerts = runtime.monitors.observe(
            symbol, (record or {}).get("monitor"), result.signals, result.rows,
            [*result.outcomes, *shadow_outcomes], result.fills, ensemble)
    except Exception:  # noqa: BLE001
        log.exception("%s: monitoring failed on this batch (trading goes on)", symbol)
        return []
    result.record["monitor"] = state
    return await alert_messages(alerts)


async def handle_batch(events: Sequence[EventT]) -> None:
    """Process one batch of ``market_data`` events (see the module docstring)."""
    stamped = events[-1].message.timestamp  # seconds; the candle message's Kafka time
    runtime.intake_latency.add((runtime.clock() - stamped) * 1000.0)
    by_symbol: dict[str, list[tuple[EventT, ValidCandle]]] = {}
    letters: list[tuple[EventT, str, str]] = []
    for event in events:
        try:
            candle = _decode(event)
        except CandleError as err:
            letters.append((event, err.code, err.reason))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever it is, a dead letter, not a crash
            letters.append((event, *_internal(exc)))
            continue
        by_symbol.setdefault(candle.symbol, []).append((event, candle))

    records: dict[bytes, tuple[dict[str, Any], EventT]] = {}
    pending: list[Awaitable[Any]] = []
    fills: list[Any] = []
    equity: list[tuple[str, int, float, float]] = []
    filled_books: dict[str, dict[str, Any]] = {}
    for symbol, items in by_symbol.items():
        key = symbol.encode()
        record = read_for_event(symbol_to_window, key, items[-1][0])
        ensemble = runtime.models.current(symbol)
        try:
            result: Advanced | None = _advance(symbol, record, items, ensemble)
        except Exception:  # noqa: BLE001
            result = _advance_one_by_one(symbol, record, items, ensemble)
        if result is None:
            letters.extend((event, "internal_error", "no candle could be applied")
                           for event, _ in items)
            continue
        letters.extend((items[r.index][0], r.code, r.reason) for r in result.rejected)
        metrics.observe_symbol_batch(symbol, len(items), result)
        for gap in result.gaps:
            i18n.log(log, logging.WARNING, "window_gap", symbol=symbol, **gap)
        if result.model_error:
            i18n.log(log, logging.ERROR, "model_error", symbol=symbol,
                     error=result.model_error, count=len(result.signals))
        if result.signals and not result.signals[-1]["reason"]:
            runtime.predict_latency.add(result.signals[-1]["latency_ms"])
        for data in result.signals:
            pending.append(await publish_json(SIGNALS, symbol, data))
        for fill in result.fills:
            order = fill.to_dict()
            pending.append(await publish_json(ORDERS, symbol, order))
            i18n.log(log, logging.INFO, "broker.fill", **order)
        shadow_pending, shadow_outcomes = await _shadow(symbol, record, result)
        pending.extend(shadow_pending)
        pending.extend(await _send_outcomes(symbol, record, result, shadow_outcomes))
        pending.extend(await _monitor(symbol, record, result, ensemble, shadow_outcomes))
        if result.fills:
            filled_books[symbol] = result.record["book"]
        fills.extend(result.fills)
        equity.extend(result.equity)
        records[key] = (result.record, items[-1][0])
    letters.sort(key=lambda letter: (letter[0].message.partition, letter[0].message.offset))
    metrics.observe_dead_letters(code for _, code, _ in letters)
    for event, code, reason in letters:
        pending.append(await send_dead_letter(event, code, reason, agent=AGENT))
    if pending:
        await asyncio.gather(*pending)  # delivered before the records move past them
        runtime.delivery_latency.add((runtime.clock() - stamped) * 1000.0)
        metrics.observe_delivered(stamped, runtime.clock())
    if fills or equity:  # the trade log before the records: a crash repeats, never loses

        def log_batch(db: TradeLog) -> None:
            db.record_batch(fills, filled_books, equity)

        await runtime.trade_log(log_batch)
    for key, (record, event) in records.items():
        write_for_event(symbol_to_window, key, record, event)


@app.agent(market_data_raw_topic, name=AGENT)
async def process_candles(stream):  # type: ignore[no-untyped-def]
    """Closed candles -> one record per symbol, a Signal per candle, orders under the risk
    rules; bad messages to dead letters."""
    await runtime.models_loaded.wait()  # the first candle already meets its models
    async for events in batches(stream, settings.batch_max_candles):
        try:
            await handle_batch(events)
        except Exception:  # noqa: BLE001 - isolate the message that breaks the batch
            log.exception("batch of %d candles failed; retrying one message at a time",
                          len(events))
            for event in events:
                try:
                    await handle_batch([event])
                except Exception as exc:  # noqa: BLE001
                    await (await send_dead_letter(event, *_internal(exc), agent=AGENT))
                    metrics.observe_dead_letters(["internal_error"])


@app.timer(settings.model_check_interval_s, name="refresh_models")
async def refresh_models() -> None:
    """Follow the registry: (re)load changed models in an executor, swap them atomically."""
    await runtime.refresh_models()


@app.task
async def load_models_at_start() -> None:
    await runtime.refresh_models()
