"""``execute_signals``: the broker agent over ``signals`` (partitioned by symbol).

Every closed candle has a Signal (a NEUTRAL with a ``reason`` when there is no verdict), so
the book of every symbol advances on every candle: pending market orders fill at the next
open, stops and take profits are checked, whether or not a model spoke. The rules are
:func:`tinhieu.broker.step`, the same function the backtest runs.

Signals are taken in batches and grouped by symbol. Effects, in this order, so that a crash
repeats and never loses: orders sent and their delivery awaited; fills and equity written to
the SQLite trade log (on its own thread, off the event loop); then each book written once.
A re-delivered signal meets a book whose ``last_candle_time`` already covers it and changes
nothing; an order re-sent after a crash has the same deterministic id, which consumers and
the trade log's UNIQUE constraint treat as one order.
"""

from __future__ import annotations

from streams.app import app, runtime, settings  # first: the app must exist  # isort: skip

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from faust.types import EventT

from agents.deadletter import send_dead_letter
from models.records import Order
from streams.topics import orders_topic, signals_topic
from tables import write_for_event
from tables.positions import symbol_to_book
from tinhieu import i18n
from tinhieu.broker import (
    BrokerError,
    Fill,
    RiskConfig,
    new_state,
    position_value,
    signal_from_record,
    step,
)
from tinhieu.tradelog import TradeLog

log = logging.getLogger("tinhieu.broker")
AGENT = "execute_signals"
HOUR_MS = 3_600_000
risk = RiskConfig.from_settings(settings)

i18n.register(
    {
        "broker.fill": (
            i18n.TAGS["order"],
            "{symbol} {side} {amount:.6f} @ {price:.4f} ({reason}, tin cậy {confidence:.0%}) "
            "id {id}",
            "{symbol} {side} {amount:.6f} @ {price:.4f} ({reason}, confidence "
            "{confidence:.0%}) id {id}",
        ),
    }
)


def _write_trade_log(
    db: TradeLog,
    fills: Sequence[Fill],
    books: dict[str, dict[str, Any]],
    equity: Sequence[tuple[str, int, float, float]],
) -> None:
    db.record_fills(fills)
    for symbol, book in books.items():
        db.upsert_position(symbol, book)
    for row in equity:
        db.record_equity(*row)


async def handle_batch(events: Sequence[EventT]) -> None:
    """Advance the books by one batch of signals (see the module docstring)."""
    books: dict[bytes, tuple[dict[str, Any], EventT]] = {}
    filled_books: dict[str, dict[str, Any]] = {}
    fills: list[Fill] = []
    equity: list[tuple[str, int, float, float]] = []
    letters: list[tuple[EventT, str, str]] = []
    for event in events:
        try:
            bar, sig = signal_from_record(event.value)
            key = sig.symbol.encode()
            held = books.get(key)
            book = held[0] if held else symbol_to_book.get(key) or new_state(sig.symbol, risk)
            new_book, new_fills = step(book, bar, sig, risk)
        except BrokerError as exc:
            letters.append((event, "broker_error", str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - any bad signal is a dead letter
            letters.append((event, "invalid_signal", f"{type(exc).__name__}: {exc}"))
            continue
        books[key] = (new_book, event)
        if new_book is book:  # already processed (re-delivered): nothing new
            continue
        fills.extend(new_fills)
        if new_fills:
            filled_books[sig.symbol] = new_book
        if new_fills or bar.ts % HOUR_MS == 0:  # equity at every fill and every full hour
            equity.append(
                (sig.symbol, bar.ts, float(new_book["cash"]), position_value(new_book, bar.close))
            )
    pending: list[Awaitable[Any]] = []
    for fill in fills:
        data = fill.to_dict()
        pending.append(await orders_topic.send(key=fill.symbol, value=Order(**data)))
        i18n.log(log, logging.INFO, "broker.fill", **data)
    for event, code, reason in letters:
        pending.append(await send_dead_letter(event, code, reason, agent=AGENT))
    if pending:
        await asyncio.gather(*pending)  # delivered before the books move past them
    if fills or equity:  # the trade log before the books: a crash repeats, never loses
        await runtime.trade_log(lambda db: _write_trade_log(db, fills, filled_books, equity))
    for key, (book, event) in books.items():
        # Written back even when unchanged by a re-delivered signal: re-logs a book the
        # changelog may not have yet (the local store can be ahead after a crash).
        write_for_event(symbol_to_book, key, book, event)


@app.agent(signals_topic, name=AGENT)
async def execute_signals(stream):  # type: ignore[no-untyped-def]
    """Signals -> orders under the risk rules; the book per symbol in ``symbol_to_book``."""
    async for events in stream.take_events(
        settings.batch_max_candles, within=settings.batch_max_wait_ms / 1000.0
    ):
        try:
            await handle_batch(events)
        except Exception:  # noqa: BLE001 - isolate the message that breaks the batch
            log.exception("batch of %d signals failed; retrying one at a time", len(events))
            for event in events:
                try:
                    await handle_batch([event])
                except Exception as exc:  # noqa: BLE001
                    reason = f"{type(exc).__name__}: {exc}"
                    await (await send_dead_letter(event, "internal_error", reason, AGENT))
