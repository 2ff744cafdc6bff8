"""Replay history files as a stream of closed candles, merged in time order across symbols."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from pathlib import Path

from tinhieu.candles import Bar
from tinhieu.data import load_candles, symbol_from_path
from tinhieu.symbols import normalize


def load_replay(
    files: Sequence[str | Path],
    supported: Sequence[str],
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int | None = None,
) -> dict[str, list[Bar]]:
    """Candles per symbol from the files (the symbol comes from each file name)."""
    out: dict[str, list[Bar]] = {}
    for path in files:
        symbol = normalize(symbol_from_path(path), supported)
        df = load_candles(path, start_ms, end_ms)
        if limit is not None:
            df = df.iloc[:limit]
        bars = [
            Bar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]))
            for r in df.itertuples(index=False, name=None)
        ]
        out.setdefault(symbol, []).extend(bars)
    return out


def merge_in_time(per_symbol: dict[str, list[Bar]]) -> Iterator[tuple[str, Bar]]:
    """(symbol, bar) pairs in (open time, symbol) order."""

    def keyed(symbol: str, bars: list[Bar]) -> Iterator[tuple[int, str, Bar]]:
        for bar in bars:
            yield bar.ts, symbol, bar

    streams = [keyed(sym, bars) for sym, bars in sorted(per_symbol.items())]
    for _ts, sym, bar in heapq.merge(*streams):
        yield sym, bar
