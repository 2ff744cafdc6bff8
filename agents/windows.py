"""``update_windows``: closed candles from ``market_data`` into ``symbol_to_window``."""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist before topics/tables  # isort: skip

import logging

from agents.deadletter import send_dead_letter
from agents.hooks import on_new_candle
from streams.topics import market_data_raw_topic
from tables.windows import symbol_to_window
from tinhieu import i18n
from tinhieu.candles import CandleError, Outcome, apply_candle, candle_from_message

log = logging.getLogger("tinhieu.windows")

i18n.register(
    {
        "window_gap": (
            i18n.TAGS["warn"],
            "{symbol}: thiếu {missing} nến giữa {after} và {before} (đã ghi nhận, không tự điền)",
            "{symbol}: {missing} candles missing between {after} and {before} "
            "(recorded, not filled)",
        ),
        "window_duplicate": (
            i18n.TAGS["skip"],
            "{symbol}: nến {ts} đã có, bỏ qua (idempotent)",
            "{symbol}: candle {ts} already held, skipped (idempotent)",
        ),
    }
)


@app.agent(market_data_raw_topic, name="update_windows")
async def update_windows(stream):  # type: ignore[no-untyped-def]
    """Validate each candle and apply it to its symbol's window; bad ones to dead letters."""
    async for event in stream.events():
        try:
            candle = candle_from_message(
                event.message.key, event.value, settings.symbols, settings.timeframe_ms
            )
            window, outcome = apply_candle(
                symbol_to_window.get(candle.symbol.encode()),
                candle,
                settings.window_size,
                settings.timeframe_ms,
                offset=event.message.offset,
            )
        except CandleError as err:
            await send_dead_letter(event, err.code, err.reason, agent="update_windows")
            continue
        redelivered = outcome in (Outcome.DUPLICATE, Outcome.REDELIVERED)
        if redelivered:
            i18n.log(log, logging.DEBUG, "window_duplicate", symbol=candle.symbol, ts=candle.bar.ts)
        # Written back every time, also for a re-delivered candle: the local store may be
        # ahead of the changelog after a crash, and the changelog is what recovery reads.
        symbol_to_window[candle.symbol.encode()] = window
        if outcome is Outcome.GAP:
            gap = window["gaps"][-1]
            i18n.log(log, logging.WARNING, "window_gap", symbol=candle.symbol, **gap)
        for hook in on_new_candle:
            await hook(candle.symbol, candle.bar, window, redelivered)
