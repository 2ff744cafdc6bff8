"""Commands of the one entry point: ``faust -A streams.app <command>``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from faust.cli import argument, option
from tqdm import tqdm

from streams.app import app, settings
from streams.topics import DEAD_LETTERS, MARKET_DATA, ORDERS, SIGNALS
from tinhieu.candles import bar_to_dict
from tinhieu.data import DataFileError, parse_time
from tinhieu.kafka_io import ensure_topics, make_producer
from tinhieu.replay import load_replay, merge_in_time
from tinhieu.symbols import UnknownSymbolError


async def ensure_all_topics() -> None:
    await ensure_topics(
        settings.broker_url,
        [MARKET_DATA, SIGNALS, ORDERS, DEAD_LETTERS],
        settings.partitions,
        settings.replicas,
    )


@app.command(
    argument("files", nargs=-1, required=True),
    option("--speed", type=float, default=60.0, show_default=True,
           help="Market time per wall time: 60 replays one minute of candles per second."),
    option("--max", "max_speed", is_flag=True, default=False, help="As fast as possible."),
    option("--start", default=None, help="First candle (UTC date/time or ms)."),
    option("--end", default=None, help="End, exclusive (UTC date/time or ms)."),
    option("--limit", type=int, default=None, help="At most N candles per file."),
)
async def replay(
    self: object,
    files: tuple[str, ...],
    speed: float,
    max_speed: bool,
    start: str | None,
    end: str | None,
    limit: int | None,
) -> None:
    """Publish candles from CSV files (format of shared/data) to market_data, in time order."""
    try:
        per_symbol = load_replay(files, settings.symbols, parse_time(start), parse_time(end), limit)
    except (DataFileError, UnknownSymbolError) as exc:
        raise SystemExit(f"[LOI] {exc}") from None
    total = sum(len(v) for v in per_symbol.values())
    await ensure_all_topics()
    producer = make_producer(settings.broker_url)
    await producer.start()
    sent = 0
    began = time.monotonic()
    first_ts: int | None = None
    pending = []
    try:
        with tqdm(total=total, unit="nen", desc="replay", mininterval=0.5) as bar:
            for symbol, candle in merge_in_time(per_symbol):
                if not max_speed and speed > 0:
                    first_ts = candle.ts if first_ts is None else first_ts
                    due = (candle.ts - first_ts) / 1000.0 / speed
                    lag = due - (time.monotonic() - began)
                    if lag > 0:
                        await asyncio.sleep(lag)
                value = json.dumps(
                    bar_to_dict(symbol, candle, settings.timeframe, "replay")
                ).encode()
                pending.append(await producer.send(MARKET_DATA, value, key=symbol.encode()))
                sent += 1
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    pending.clear()
            if pending:
                await asyncio.gather(*pending)
                bar.update(len(pending))
    finally:
        await producer.stop()
    elapsed = time.monotonic() - began
    print(f"[DU LIEU] replayed {sent} candles of {len(per_symbol)} symbol(s) in {elapsed:.1f} s")
