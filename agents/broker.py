"""``execute_signals``: the broker agent over ``signals`` (partitioned by symbol).

For each Signal: read the symbol's book, run the risk rules (tinhieu.broker.step, the
same function the backtest runs), send the resulting orders and wait for their delivery,
record the fills in the SQLite trade log, then write the book back. After a crash the
signal is re-delivered and, if the book was not written, produces the same orders with
the same deterministic ids, which consumers and the trade log's UNIQUE constraint treat
as one order. Any other order of these effects could lose an order or a trade-log row.
"""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist  # isort: skip

import logging

from agents.deadletter import send_dead_letter
from models.records import Order
from streams.topics import orders_topic, signals_topic
from tables.positions import symbol_to_book
from tinhieu import i18n
from tinhieu.broker import (
    BrokerError,
    RiskConfig,
    new_state,
    position_value,
    signal_from_record,
    step,
)
from tinhieu.tradelog import TradeLog

log = logging.getLogger("tinhieu.broker")
risk = RiskConfig.from_settings(settings)
_trade_log: TradeLog | None = None

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


def trade_log() -> TradeLog:
    global _trade_log
    if _trade_log is None:
        settings.trade_db_path.parent.mkdir(parents=True, exist_ok=True)
        _trade_log = TradeLog(settings.trade_db_path)
    return _trade_log


@app.agent(signals_topic, name="execute_signals")
async def execute_signals(stream):  # type: ignore[no-untyped-def]
    """Signals -> orders under the risk rules; the book per symbol in ``symbol_to_book``."""
    async for event in stream.events():
        signal = event.value
        try:
            bar, sig = signal_from_record(signal)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            await send_dead_letter(event, "invalid_signal", str(exc), agent="execute_signals")
            continue
        key = sig.symbol.encode()
        book = symbol_to_book.get(key) or new_state(sig.symbol, risk)
        try:
            new_book, fills = step(book, bar, sig, risk)
        except BrokerError as exc:
            await send_dead_letter(event, "broker_error", str(exc), agent="execute_signals")
            continue
        for fill in fills:
            fut = await orders_topic.send(key=sig.symbol, value=Order(**fill.to_dict()))
            await fut  # delivered before the book moves on
            i18n.log(log, logging.INFO, "broker.fill", **fill.to_dict())
        hourly = bar.ts % 3_600_000 == 0
        if fills or hourly:  # the trade log before the book: a crash repeats, never loses
            db = trade_log()
            for fill in fills:
                db.record_fill(fill)
            if fills:
                db.upsert_position(sig.symbol, new_book)
            # Equity at every fill and every full hour (idempotent per symbol and time).
            db.record_equity(
                sig.symbol, bar.ts, float(new_book["cash"]), position_value(new_book, bar.close)
            )
        # Written back even when unchanged: re-logs a book the changelog may not have yet.
        symbol_to_book[key] = new_book
