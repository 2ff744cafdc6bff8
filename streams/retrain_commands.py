"""``faust -A streams.app retrain [--symbols BTC/USDT,...] [--days N]``: train from the stream.

Reads each symbol's candles of the last ``--days`` (default: ``market_data_retention_days``)
from ``market_data`` (no CSV, no exchange), trains them through the walk-forward harness and
the promotion gate of ``train`` and registers the version: with a champion, a version that
passes the gate becomes ``challenger``. The pure part is :mod:`tinhieu.retrain`; the leader's
schedule (``retrain_interval_h``) runs this command in a subprocess (agents/retrain.py).
"""

from __future__ import annotations

import asyncio

from faust.cli import option

from streams.app import app, settings
from streams.topics import MARKET_DATA
from tinhieu.kafka_io import read_topic
from tinhieu.symbols import UnknownSymbolError, normalize


@app.command(
    option("--symbols", default=None, help="Comma-separated; default: all configured."),
    option("--days", default=None, type=float,
           help="Days of candles before the newest one on market_data; default: "
           "market_data_retention_days."),
    option("--splits", default=5, type=int, show_default=True, help="Walk-forward folds."),
    option("--max-train-rows", default=None, type=int, help="Cap rows per fold (speed)."),
)
async def retrain(
    self: object, symbols: str | None, days: float | None, splits: int,
    max_train_rows: int | None,
) -> None:
    """Retrain from the candles Kafka keeps on market_data; register (challenger when a
    champion serves and the gate passes). Exit 1 when a symbol could not be trained."""
    from tinhieu.registry import open_registry
    from tinhieu.retrain import RetrainOutcome, candles_from_messages, retrain_symbol

    loop = asyncio.get_running_loop()
    days = settings.market_data_retention_days if days is None else days
    if days <= 0:
        raise SystemExit(f"[LOI] --days must be > 0, got {days:g}")
    try:
        wanted = [normalize(s, settings.symbols) for s in (symbols or "").split(",")
                  if s.strip()] or list(settings.symbols)
    except UnknownSymbolError as exc:
        raise SystemExit(f"[LOI] {exc}") from None
    registry = open_registry(settings)
    print(f"[MO HINH] retrain {', '.join(wanted)} from {MARKET_DATA}: the last {days:g} days "
          f"of each, {splits} walk-forward folds, registry {type(registry).__name__}",
          flush=True)
    outcomes = []
    for symbol in wanted:
        print(f"[DU LIEU] {symbol}: reading its partition of {MARKET_DATA} ...", flush=True)
        messages = await read_topic(settings.broker_url, MARKET_DATA, key=symbol.encode(),
                                    timeout_s=600)
        history = await loop.run_in_executor(None, lambda s=symbol, m=messages: (
            candles_from_messages(((k, v) for _p, _o, k, v in m), s, settings.symbols,
                                  settings.timeframe_ms, days=days,
                                  max_bytes=settings.max_message_bytes)))
        print(f"[DU LIEU] {symbol}: {history.summary()}; training ...", flush=True)
        try:
            outcome = await loop.run_in_executor(None, lambda h=history: retrain_symbol(
                h, settings, registry, n_splits=splits, max_train_rows=max_train_rows))
        except Exception as exc:  # a store that cannot be written: say so, go on
            outcome = RetrainOutcome(symbol, history, "failed", f"{type(exc).__name__}: {exc}")
        outcomes.append(outcome)
        for line in outcome.lines()[1:]:
            print(line, flush=True)
    print("[MO HINH] summary:")
    for outcome in outcomes:
        for line in outcome.lines():
            print("  " + line)
    if any(o.status in ("refused", "failed") for o in outcomes):
        raise SystemExit(1)
