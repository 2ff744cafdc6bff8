"""History files: gzip or plain CSV with header ``timestamp,open,high,low,close,volume``.

``timestamp`` is the candle OPEN time in integer ms UTC. File names such as
``BTCUSDT_1m.csv.gz`` tell the symbol; ``symbol_from_path`` reads it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tinhieu.symbols import canonical

COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
_NAME = re.compile(r"^([A-Za-z0-9]+?)(?:[_\-.](\d+[mhdw]))?\.csv(?:\.gz)?$")


class DataFileError(ValueError):
    """A history file that cannot be used; the message names the file and the problem."""


def symbol_from_path(path: str | Path) -> str:
    match = _NAME.match(Path(path).name)
    if not match:
        raise DataFileError(
            f"{path}: cannot tell the symbol from the file name (BTCUSDT_1m.csv.gz)"
        )
    return canonical(match.group(1))


def load_candles(
    path: str | Path, start_ms: int | None = None, end_ms: int | None = None
) -> pd.DataFrame:
    """Read one history file into a DataFrame with ``COLUMNS`` (ts as int64), ascending."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype={c: "float64" for c in COLUMNS[1:]})
    except Exception as exc:  # pandas raises many kinds; name the file
        raise DataFileError(f"{path}: cannot read CSV: {exc}") from exc
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataFileError(f"{path}: missing column(s) {', '.join(missing)}")
    df = df[COLUMNS].copy()
    df["timestamp"] = df["timestamp"].astype(np.int64)
    if start_ms is not None:
        df = df[df["timestamp"] >= start_ms]
    if end_ms is not None:
        df = df[df["timestamp"] < end_ms]
    if not df["timestamp"].is_monotonic_increasing:
        df = df.sort_values("timestamp", kind="stable")
    df = df.drop_duplicates("timestamp", keep="first").reset_index(drop=True)
    return df


def parse_time(text: str | None) -> int | None:
    """``2021-05-01`` or ``2021-05-01T12:00`` (UTC) or integer ms -> ms UTC."""
    if text is None or text == "":
        return None
    if re.fullmatch(r"\d{12,14}", text):
        return int(text)
    ts = pd.Timestamp(text)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def find_history_file(data_dir: str | Path, symbol: str, timeframe: str) -> Path:
    """``data_dir/BTCUSDT_1m.csv.gz`` (or .csv) for ``BTC/USDT``."""
    base = Path(data_dir)
    name = symbol.replace("/", "")
    for candidate in (base / f"{name}_{timeframe}.csv.gz", base / f"{name}_{timeframe}.csv"):
        if candidate.exists():
            return candidate
    raise DataFileError(f"no history file for {symbol} {timeframe} in {base}")
