"""The SQLite trade log: the record of fills, equity and open positions for people.

WAL mode (readers such as ``faust -A streams.app trades`` or the web views do not block the
broker agent), parameterized SQL only, and a UNIQUE order id so that a re-delivered fill can
never become a second row. The Faust tables are the record for recovery; this file is the
record for humans and reports.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tinhieu.broker import Fill
from tinhieu.core_types import ORDER_FIELDS

# The columns of ``trades`` are the order fields (the JSON of an ``orders`` message).
TRADE_COLUMNS: tuple[str, ...] = ORDER_FIELDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trades (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    symbol        TEXT NOT NULL,
    side          TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    status        TEXT NOT NULL,
    price         REAL NOT NULL,
    amount        REAL NOT NULL,
    fee           REAL NOT NULL,
    entry_price   REAL NOT NULL,
    stop_loss     REAL NOT NULL,
    take_profit   REAL NOT NULL,
    confidence    REAL NOT NULL,
    reason        TEXT NOT NULL,
    candle_time   INTEGER NOT NULL,
    fill_time     INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    cash_after    REAL NOT NULL,
    pnl           REAL NOT NULL,
    recorded_at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_symbol_time ON trades (symbol, fill_time);
CREATE TABLE IF NOT EXISTS equity (
    symbol         TEXT NOT NULL,
    time           INTEGER NOT NULL,
    cash           REAL NOT NULL,
    position_value REAL NOT NULL,
    equity         REAL NOT NULL,
    PRIMARY KEY (symbol, time)
);
CREATE TABLE IF NOT EXISTS model_decisions (
    symbol     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    challenger TEXT NOT NULL,
    decision   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    evidence   TEXT NOT NULL,
    PRIMARY KEY (symbol, at, challenger, decision)
);
CREATE TABLE IF NOT EXISTS positions (
    symbol      TEXT PRIMARY KEY,
    qty         REAL NOT NULL,
    entry       REAL NOT NULL,
    stop_loss   REAL NOT NULL,
    take_profit REAL NOT NULL,
    updated     INTEGER NOT NULL
);
"""


class TradeLogError(RuntimeError):
    """The trade log file cannot be opened or written; the message names the file."""


class TradeLog:
    """SQLite trade log with tables ``trades``, ``equity``, ``positions`` and
    ``model_decisions`` (the shadow's promote / keep decisions).

    Parameters
    ----------
    path : Path
        The database file; its folder is created. ``":memory:"`` works for tests.
    clock : callable, optional
        Returns unix seconds for ``recorded_at``; passed in so tests are deterministic.
    """

    def __init__(self, path: Path | str, clock: Any = time.time) -> None:
        self.path = Path(path) if str(path) != ":memory:" else path
        self._clock = clock
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise TradeLogError(
                f"cannot open the trade log {path}: {exc}; check the path "
                "(setting trade_db, TINHIEU_TRADE_DB) and that the folder is writable"
            ) from exc

    # --- writes ---------------------------------------------------------------------
    def record_fill(self, fill: Fill | Mapping[str, Any]) -> bool:
        """Insert a fill; ``False`` (and no second row) when its id is already logged."""
        data = fill.to_dict() if isinstance(fill, Fill) else dict(fill)
        missing = [c for c in TRADE_COLUMNS if c not in data]
        if missing:
            raise TradeLogError(f"fill {data.get('id')!r} lacks field(s) {', '.join(missing)}")
        values = [data[c] for c in TRADE_COLUMNS] + [float(self._clock())]
        cols = ", ".join(TRADE_COLUMNS) + ", recorded_at"
        marks = ", ".join("?" * len(values))
        with self._db:
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO trades ({cols}) VALUES ({marks})", values
            )
        return cur.rowcount == 1

    def record_fills(self, fills: Iterable[Fill | Mapping[str, Any]]) -> int:
        """Insert many fills in one transaction; returns how many were new."""
        cols = ", ".join(TRADE_COLUMNS) + ", recorded_at"
        marks = ", ".join("?" * (len(TRADE_COLUMNS) + 1))
        now = float(self._clock())
        new = 0
        with self._db:
            for fill in fills:
                data = fill.to_dict() if isinstance(fill, Fill) else dict(fill)
                cur = self._db.execute(
                    f"INSERT OR IGNORE INTO trades ({cols}) VALUES ({marks})",
                    [data[c] for c in TRADE_COLUMNS] + [now],
                )
                new += cur.rowcount
        return new

    def record_equity(self, symbol: str, time_ms: int, cash: float, position_value: float) -> None:
        """Equity of ``symbol``'s book at ``time_ms``; a second call for the same time replaces."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO equity (symbol, time, cash, position_value, equity) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    symbol,
                    int(time_ms),
                    float(cash),
                    float(position_value),
                    float(cash) + float(position_value),
                ),
            )

    def upsert_position(self, symbol: str, state: Mapping[str, Any]) -> None:
        """Write the open position of a broker state (qty 0 when flat)."""
        updated = state.get("last_candle_time") or 0
        with self._db:
            self._db.execute(
                "INSERT INTO positions (symbol, qty, entry, stop_loss, take_profit, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(symbol) DO UPDATE SET qty=excluded.qty, "
                "entry=excluded.entry, stop_loss=excluded.stop_loss, "
                "take_profit=excluded.take_profit, updated=excluded.updated",
                (
                    symbol,
                    float(state["qty"]),
                    float(state["entry_price"]),
                    float(state["stop_loss"]),
                    float(state["take_profit"]),
                    int(updated),
                ),
            )

    def record_batch(
        self,
        fills: Iterable[Fill | Mapping[str, Any]],
        books: Mapping[str, Mapping[str, Any]],
        equity: Iterable[tuple[str, int, float, float]],
    ) -> None:
        """One batch of the broker: its fills, the books that filled, the equity points.

        Every part is idempotent (UNIQUE ids, upserts), so a batch handled again after a
        crash leaves the log as it was."""
        self.record_fills(fills)
        for symbol, book in books.items():
            self.upsert_position(symbol, book)
        for row in equity:
            self.record_equity(*row)

    def record_decision(self, symbol: str, at_ms: int, challenger: str, decision: str,
                        actor: str, reason: str, evidence: Mapping[str, Any]) -> bool:
        """A promote / keep decision about a challenger, with its numbers; ``False`` when
        the same decision (symbol, candle time, version) is already logged."""
        import json

        with self._db:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO model_decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (symbol, int(at_ms), challenger, decision, actor, reason,
                 json.dumps(evidence, sort_keys=True, default=str)),
            )
        return cur.rowcount == 1

    def decisions(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Logged model decisions, oldest first (evidence as JSON text)."""
        sql = "SELECT * FROM model_decisions"
        args: tuple[Any, ...] = ()
        if symbol is not None:
            sql += " WHERE symbol = ?"
            args = (symbol,)
        return [dict(r) for r in self._db.execute(sql + " ORDER BY at", args)]

    # --- reads ----------------------------------------------------------------------
    def trades(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Logged fills in the order they were recorded, optionally of one symbol."""
        cols = ", ".join(TRADE_COLUMNS) + ", recorded_at"
        if symbol is None:
            rows = self._db.execute(f"SELECT {cols} FROM trades ORDER BY seq")
        else:
            rows = self._db.execute(
                f"SELECT {cols} FROM trades WHERE symbol = ? ORDER BY seq", (symbol,)
            )
        return [dict(r) for r in rows]

    def positions(self) -> list[dict[str, Any]]:
        """One row per symbol the broker has touched (qty 0 when flat)."""
        rows = self._db.execute(
            "SELECT symbol, qty, entry, stop_loss, take_profit, updated FROM positions "
            "ORDER BY symbol"
        )
        return [dict(r) for r in rows]

    def equity(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Equity points in time order, optionally of one symbol."""
        sql = "SELECT symbol, time, cash, position_value, equity FROM equity"
        if symbol is None:
            rows = self._db.execute(sql + " ORDER BY time, symbol")
        else:
            rows = self._db.execute(sql + " WHERE symbol = ? ORDER BY time", (symbol,))
        return [dict(r) for r in rows]

    def trades_page(
        self,
        symbol: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of fills in recording order, filtered by symbol and fill time (ms,
        inclusive), and how many match in all."""
        where, args = _filters("fill_time", symbol, since, until)
        cols = ", ".join(TRADE_COLUMNS) + ", recorded_at"
        total = int(self._db.execute(f"SELECT COUNT(*) FROM trades{where}", args).fetchone()[0])
        rows = self._db.execute(
            f"SELECT {cols} FROM trades{where} ORDER BY seq LIMIT ? OFFSET ?",
            (*args, int(limit), int(offset)),
        )
        return [dict(r) for r in rows], total

    def equity_page(
        self,
        symbol: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of equity points in time order (then symbol), filtered like
        :meth:`trades_page`, and how many match in all."""
        where, args = _filters("time", symbol, since, until)
        total = int(self._db.execute(f"SELECT COUNT(*) FROM equity{where}", args).fetchone()[0])
        rows = self._db.execute(
            "SELECT symbol, time, cash, position_value, equity FROM equity"
            f"{where} ORDER BY time, symbol LIMIT ? OFFSET ?",
            (*args, int(limit), int(offset)),
        )
        return [dict(r) for r in rows], total

    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TradeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filters(
    time_column: str, symbol: str | None, since: int | None, until: int | None
) -> tuple[str, tuple[Any, ...]]:
    """A parameterized WHERE clause (only the column name is ours, never the caller's)."""
    parts: list[str] = []
    args: list[Any] = []
    if symbol is not None:
        parts.append("symbol = ?")
        args.append(symbol)
    if since is not None:
        parts.append(f"{time_column} >= ?")
        args.append(int(since))
    if until is not None:
        parts.append(f"{time_column} <= ?")
        args.append(int(until))
    return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(args)


def _fmt_time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(ms) / 1000))


def format_trades(rows: Iterable[Mapping[str, Any]]) -> str:
    """A plain-text table of fills, newest last, with the realized PnL summed at the bottom."""
    header = (
        "fill time (UTC)",
        "symbol",
        "side",
        "reason",
        "price",
        "amount",
        "fee",
        "pnl",
        "conf",
        "id",
    )
    lines: list[tuple[str, ...]] = []
    total = 0.0
    for r in rows:
        total += float(r.get("pnl") or 0.0)
        lines.append(
            (
                _fmt_time(r["fill_time"]),
                str(r["symbol"]),
                str(r["side"]),
                str(r["reason"]),
                f"{float(r['price']):.6g}",
                f"{float(r['amount']):.6g}",
                f"{float(r['fee']):.4f}",
                f"{float(r['pnl']):+.2f}" if r["side"] == "SELL" else "",
                f"{float(r['confidence']):.2f}",
                str(r["id"])[:12],
            )
        )
    if not lines:
        return "(no trades / chua co giao dich)"
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i >= 4 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [fmt(header), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) for line in lines]
    out.append(f"{len(lines)} fills, realized pnl {total:+.2f}")
    return "\n".join(out)
