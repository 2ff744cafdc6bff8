"""SQLite trade log: UNIQUE order id, WAL, parameterized SQL, readable table."""

from __future__ import annotations

import sqlite3

import pytest

from tinhieu.broker import RiskConfig, SignalIn, new_state, step
from tinhieu.candles import Bar
from tinhieu.tradelog import TradeLog, TradeLogError, format_trades

SYM = "BTC/USDT"


def two_fills():
    cfg = RiskConfig()
    s = new_state(SYM, cfg)
    s, _ = step(s, Bar(0, 99, 99, 99, 99, 1), SignalIn(SYM, 0, "BUY", 0.9, "v1"), cfg)
    s, (buy,) = step(s, Bar(60_000, 100, 100, 100, 100, 1), None, cfg)
    mid = s
    s, (sell,) = step(s, Bar(120_000, 101, 106, 100, 105, 1), None, cfg)
    return buy, sell, mid


@pytest.fixture
def log(tmp_path):
    with TradeLog(tmp_path / "sub" / "trades.db", clock=lambda: 1.0) as tl:
        yield tl


def test_wal_mode_and_tables(log, tmp_path):
    assert log.journal_mode() == "wal"
    db = sqlite3.connect(tmp_path / "sub" / "trades.db")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"trades", "equity", "positions"} <= tables
    db.close()


def test_same_order_id_is_logged_once(log):
    buy, sell, _ = two_fills()
    assert log.record_fill(buy) is True
    assert log.record_fill(buy) is False
    assert log.record_fill(buy.to_dict()) is False  # a re-delivered Order record
    assert log.record_fills([buy, sell, sell]) == 1
    rows = log.trades()
    assert [r["id"] for r in rows] == [buy.id, sell.id]
    assert rows[1]["pnl"] == pytest.approx(sell.pnl) and rows[0]["recorded_at"] == 1.0
    assert log.trades("ETH/USDT") == [] and len(log.trades(SYM)) == 2


def test_unique_constraint_holds_even_for_raw_sql(log, tmp_path):
    buy, _, _ = two_fills()
    log.record_fill(buy)
    db = sqlite3.connect(tmp_path / "sub" / "trades.db")
    row = db.execute("SELECT * FROM trades").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO trades VALUES (" + ",".join("?" * len(row)) + ")", (None, *row[1:]))
    db.close()


def test_values_are_bound_not_spliced(log):
    """A hostile symbol or model version is stored as text, never executed as SQL."""
    buy, _, _ = two_fills()
    evil = buy.to_dict() | {
        "id": "x'); DROP TABLE trades; --",
        "model_version": "'; DELETE FROM trades; --",
    }
    assert log.record_fill(evil)
    log.record_equity("x'; DROP TABLE equity; --", 1, 1.0, 2.0)
    assert [r["id"] for r in log.trades()] == [evil["id"]]
    assert log.equity()[0]["equity"] == 3.0


def test_equity_and_positions(log):
    _, _, mid = two_fills()
    log.record_equity(SYM, 60_000, 490.5, 9_500.0)
    log.record_equity(SYM, 60_000, 490.5, 9_600.0)  # same time again replaces
    log.record_equity(SYM, 120_000, 10_000.0, 0.0)
    assert [(r["time"], r["equity"]) for r in log.equity(SYM)] == [
        (60_000, 10_090.5),
        (120_000, 10_000.0),
    ]
    log.upsert_position(SYM, mid)
    (pos,) = log.positions()
    assert (pos["qty"], pos["entry"], pos["updated"]) == (mid["qty"], 100.0, 60_000)
    assert pos["stop_loss"] == pytest.approx(98.0) and pos["take_profit"] == pytest.approx(105.0)
    log.upsert_position(SYM, new_state(SYM, RiskConfig()))
    assert log.positions()[0]["qty"] == 0.0 and len(log.positions()) == 1


def test_format_trades_shows_each_fill_and_the_total(log):
    buy, sell, _ = two_fills()
    log.record_fills([buy, sell])
    text = format_trades(log.trades())
    lines = text.splitlines()
    assert len(lines) == 5 and "1970-01-01 00:01" in lines[2] and "take_profit" in lines[3]
    assert lines[-1] == f"2 fills, realized pnl {sell.pnl:+.2f}"
    assert "no trades" in format_trades([])


def test_unwritable_path_names_the_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TradeLogError, match="file"):
        TradeLog(blocker / "trades.db")
