"""The risk rules: signals become market orders with a stop loss and a take profit.

A pure step function over (candle, signal) pairs. The Faust broker agent, replay and the
offline backtest all call :func:`step` unchanged, so they produce the same orders from the
same candles. No Faust here, no clock, no I/O.

For the candle ``bar`` whose own signal is ``signal``, :func:`step`:

1. fills a pending market order (placed on the previous signal) at THIS bar's open;
2. with a position open (also one filled in step 1), checks the stop loss and the take
   profit against this bar's low and high. A bar that opens beyond a level fills at its open,
   not at the level (a gap is not a gift). When both levels lie inside one bar the order of
   the touches is unknown from OHLC, so the stop loss is taken (the conservative choice);
3. acts on this bar's signal: a BUY with ``confidence >= min_confidence``, no position and no
   pending order places a pending market BUY (fills at the next bar's open); a SELL with
   ``confidence >= min_confidence`` and a position places a pending market SELL.

The rules match Backtrader's ``BackBroker`` (market orders at the next open, stop/limit exit
orders, percentage commission); ``tests/unit/test_backtrader_parity.py`` proves it fill for
fill on real candles.

State is a JSON-able dict (it lives in a Faust table and goes through a changelog)::

    {"symbol", "cash", "qty", "entry_price", "entry_fee", "stop_loss", "take_profit",
     "entry_id", "entry_candle_time", "entry_model_version", "entry_confidence",
     "pending": None | {"side", "candle_time", "confidence", "model_version"},
     "last_candle_time", "realized_pnl", "fees_paid", "n_fills", "n_round_trips", "n_wins"}

Idempotence: a candle whose open time is not newer than ``last_candle_time`` returns the
state unchanged and no fills, so a re-delivered signal can never place a second order or
lose an exit. The input state is never modified.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from tinhieu.candles import Bar

# The action, the order's sides and reasons and the Fill are declared once, in the core.
from tinhieu.core_types import ACTIONS, Fill
from tinhieu.core_types import Reason as Reason
from tinhieu.core_types import Side as Side

STATE_VERSION = 1


class BrokerError(ValueError):
    """Input the risk engine cannot act on; the message names the input and the fix."""


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Risk rules of the paper broker.

    Parameters
    ----------
    starting_cash : float
        Quote currency (USDT) the book starts with, per symbol.
    position_size_pct : float
        Share of the cash spent on one entry, percent (0, 100].
    stop_loss_pct : float
        Stop loss distance below the entry fill price, percent.
    take_profit_pct : float
        Take profit distance above the entry fill price, percent.
    commission_pct : float
        Commission per side, percent of the notional (Binance spot: 0.1).
    min_confidence : float
        A BUY or SELL below this confidence does nothing.
    long_only : bool
        Spot trading, no short positions. ``False`` is refused (not implemented).
    """

    starting_cash: float = 10_000.0
    position_size_pct: float = 95.0
    stop_loss_pct: float = 2.0
    take_profit_pct: float = 5.0
    commission_pct: float = 0.1
    min_confidence: float = 0.6
    long_only: bool = True

    def __post_init__(self) -> None:
        checks = (
            ("starting_cash", self.starting_cash > 0, "must be > 0"),
            ("position_size_pct", 0 < self.position_size_pct <= 100, "must be in (0, 100]"),
            ("stop_loss_pct", 0 < self.stop_loss_pct < 100, "must be in (0, 100)"),
            ("take_profit_pct", self.take_profit_pct > 0, "must be > 0"),
            ("commission_pct", 0 <= self.commission_pct < 10, "must be in [0, 10)"),
            ("min_confidence", 0 <= self.min_confidence <= 1, "must be in [0, 1]"),
        )
        for name, ok, rule in checks:
            if not ok or not math.isfinite(float(getattr(self, name))):
                raise BrokerError(f"RiskConfig.{name}={getattr(self, name)!r} {rule}")
        if not self.long_only:
            raise BrokerError(
                "RiskConfig.long_only=False: short selling is not implemented; "
                "the paper broker trades spot, long only"
            )

    @classmethod
    def from_settings(cls, settings: Any) -> RiskConfig:
        """Build from :class:`tinhieu.settings.Settings` (the ``broker`` section)."""
        return cls(
            starting_cash=float(settings.starting_cash),
            position_size_pct=float(settings.position_size_pct),
            stop_loss_pct=float(settings.stop_loss_pct),
            take_profit_pct=float(settings.take_profit_pct),
            commission_pct=float(settings.fee_pct),
            min_confidence=float(settings.min_confidence),
        )

    @property
    def commission_rate(self) -> float:
        """Commission as a fraction of the notional (0.1 % -> 0.001)."""
        return self.commission_pct / 100.0


@dataclass(frozen=True, slots=True)
class SignalIn:
    """What the broker needs of a ``models.records.Signal``."""

    symbol: str
    candle_time: int
    action: str
    confidence: float
    model_version: str


def order_id(symbol: str, candle_time: int, model_version: str, side: str, reason: str) -> str:
    """Deterministic order id: the same signal always gives the same id.

    An exit by stop loss or take profit is derived from the ENTRY's signal (its candle time
    and model version), so a re-delivered candle cannot create a second exit either.
    """
    key = f"{symbol}|{int(candle_time)}|{model_version}|{side}|{reason}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def new_state(symbol: str, cfg: RiskConfig) -> dict[str, Any]:
    """A flat book for ``symbol`` with ``cfg.starting_cash``."""
    return {
        "version": STATE_VERSION,
        "symbol": symbol,
        "cash": float(cfg.starting_cash),
        "qty": 0.0,
        "entry_price": 0.0,
        "entry_fee": 0.0,
        "stop_loss": 0.0,
        "take_profit": 0.0,
        "entry_id": None,
        "entry_candle_time": None,
        "entry_model_version": None,
        "entry_confidence": 0.0,
        "pending": None,
        "last_candle_time": None,
        "realized_pnl": 0.0,
        "fees_paid": 0.0,
        "n_fills": 0,
        "n_round_trips": 0,
        "n_wins": 0,
    }


def signal_from_record(record: Any) -> tuple[Bar, SignalIn]:
    """Split a ``Signal`` record (or any object/dict with its fields) into bar and signal.

    The Faust agent calls this on each message of the ``signals`` topic.

    Raises
    ------
    BrokerError
        A field is missing, of the wrong type, or out of range (prices must be positive and
        finite, confidence within 0..1): the message names the field.
    """
    if isinstance(record, dict):
        get = record.__getitem__
    else:
        def get(k: str) -> Any:
            return getattr(record, k)
    try:
        ts_value = get("candle_time")
        if isinstance(ts_value, bool) or not isinstance(ts_value, int):
            raise BrokerError(f"candle_time must be integer ms, got {ts_value!r}")
        prices = [float(get(k)) for k in ("open", "high", "low", "close", "volume")]
        confidence = float(get("confidence"))
        symbol, action, version = get("symbol"), get("action"), get("model_version")
    except (KeyError, AttributeError) as exc:
        raise BrokerError(f"signal lacks field {exc}") from None
    except (TypeError, ValueError) as exc:
        raise BrokerError(f"signal has a field of the wrong type: {exc}") from None
    if not all(math.isfinite(p) for p in prices) or min(prices[:4]) <= 0 or prices[4] < 0:
        raise BrokerError(f"signal prices must be positive and finite, got {prices}")
    if not 0.0 <= confidence <= 1.0:
        raise BrokerError(f"signal confidence must be within 0..1, got {confidence}")
    if not all(isinstance(v, str) for v in (symbol, action, version)):
        raise BrokerError("signal symbol, action and model_version must be text")
    return Bar(ts_value, *prices), SignalIn(symbol, ts_value, action, confidence, version)


def position_value(state: dict[str, Any], price: float) -> float:
    """Market value of the open position at ``price``."""
    return float(state["qty"]) * price


def _open_position(
    st: dict[str, Any], pend: dict[str, Any], price: float, fill_time: int, cfg: RiskConfig
) -> Fill | None:
    cash = st["cash"]
    rate = cfg.commission_rate
    # Spend position_size_pct of the cash, but never so much that notional + fee > cash.
    notional = min(cash * cfg.position_size_pct / 100.0, cash / (1.0 + rate))
    amount = notional / price
    if amount <= 0.0 or not math.isfinite(amount):
        return None
    fee = amount * rate * price
    cash_after = max(0.0, cash - amount * price - fee)
    stop = price * (1.0 - cfg.stop_loss_pct / 100.0)
    take = price * (1.0 + cfg.take_profit_pct / 100.0)
    symbol = st["symbol"]
    fill = Fill(
        id=order_id(symbol, pend["candle_time"], pend["model_version"], "BUY", "signal"),
        symbol=symbol,
        side="BUY",
        status="FILLED",
        price=price,
        amount=amount,
        fee=fee,
        entry_price=price,
        stop_loss=stop,
        take_profit=take,
        confidence=pend["confidence"],
        reason="signal",
        candle_time=pend["candle_time"],
        fill_time=fill_time,
        model_version=pend["model_version"],
        cash_after=cash_after,
        pnl=0.0,
    )
    st.update(
        cash=cash_after,
        qty=amount,
        entry_price=price,
        entry_fee=fee,
        stop_loss=stop,
        take_profit=take,
        entry_id=fill.id,
        entry_candle_time=pend["candle_time"],
        entry_model_version=pend["model_version"],
        entry_confidence=pend["confidence"],
        fees_paid=st["fees_paid"] + fee,
        n_fills=st["n_fills"] + 1,
    )
    return fill


def _close_position(
    st: dict[str, Any],
    price: float,
    fill_time: int,
    reason: str,
    cfg: RiskConfig,
    candle_time: int,
    model_version: str,
    confidence: float,
) -> Fill:
    amount = st["qty"]
    fee = amount * cfg.commission_rate * price
    cash_after = st["cash"] + amount * price - fee
    pnl = (price - st["entry_price"]) * amount - st["entry_fee"] - fee
    symbol = st["symbol"]
    fill = Fill(
        id=order_id(symbol, candle_time, model_version, "SELL", reason),
        symbol=symbol,
        side="SELL",
        status="FILLED",
        price=price,
        amount=amount,
        fee=fee,
        entry_price=st["entry_price"],
        stop_loss=st["stop_loss"],
        take_profit=st["take_profit"],
        confidence=confidence,
        reason=reason,
        candle_time=candle_time,
        fill_time=fill_time,
        model_version=model_version,
        cash_after=cash_after,
        pnl=pnl,
    )
    st.update(
        cash=cash_after,
        qty=0.0,
        entry_price=0.0,
        entry_fee=0.0,
        stop_loss=0.0,
        take_profit=0.0,
        entry_id=None,
        entry_candle_time=None,
        entry_model_version=None,
        entry_confidence=0.0,
        realized_pnl=st["realized_pnl"] + pnl,
        fees_paid=st["fees_paid"] + fee,
        n_fills=st["n_fills"] + 1,
        n_round_trips=st["n_round_trips"] + 1,
        n_wins=st["n_wins"] + (1 if pnl > 0 else 0),
    )
    return fill


def step(
    state: dict[str, Any], bar: Bar, signal: SignalIn | None, cfg: RiskConfig
) -> tuple[dict[str, Any], list[Fill]]:
    """Advance the book of one symbol by one closed candle.

    Parameters
    ----------
    state : dict
        The book from :func:`new_state` or a previous ``step``; never modified.
    bar : Bar
        The closed candle (``ts`` = open time, ms UTC).
    signal : SignalIn or None
        The signal computed on ``bar`` (``candle_time == bar.ts``); ``None`` when there is
        none (before the feature warm-up).
    cfg : RiskConfig
        The risk rules.

    Returns
    -------
    (dict, list[Fill])
        The new state and the fills of this candle (0, 1 or 2: an entry and its exit can
        fill on the same candle). For an already processed candle: the input state itself
        and an empty list.

    Raises
    ------
    BrokerError
        The signal is for another candle or symbol, or its action is unknown.
    """
    last = state["last_candle_time"]
    if last is not None and bar.ts <= last:
        return state, []
    if signal is not None:
        if signal.candle_time != bar.ts:
            raise BrokerError(
                f"signal for candle {signal.candle_time} given with candle {bar.ts} "
                f"({state['symbol']}): pass each candle with its own signal"
            )
        if signal.action not in ACTIONS:
            raise BrokerError(
                f"signal action {signal.action!r} for {signal.symbol} at {signal.candle_time} "
                f"is not one of {', '.join(ACTIONS)}"
            )
        if signal.symbol != state["symbol"]:
            raise BrokerError(f"signal for {signal.symbol} given to the book of {state['symbol']}")

    st = dict(state)
    st["last_candle_time"] = bar.ts
    fills: list[Fill] = []

    # 1. the pending market order fills at this bar's open
    pend = st["pending"]
    if pend is not None:
        st["pending"] = None
        if pend["side"] == "BUY" and st["qty"] == 0.0:
            fill = _open_position(st, pend, bar.open, bar.ts, cfg)
            if fill is not None:
                fills.append(fill)
        elif pend["side"] == "SELL" and st["qty"] > 0.0:
            fills.append(
                _close_position(
                    st,
                    bar.open,
                    bar.ts,
                    "signal",
                    cfg,
                    pend["candle_time"],
                    pend["model_version"],
                    pend["confidence"],
                )
            )

    # 2. stop loss / take profit against this bar's range; stop first when both are inside
    if st["qty"] > 0.0:
        stop, take = st["stop_loss"], st["take_profit"]
        price = reason = None
        if bar.open <= stop:
            price, reason = bar.open, "stop_loss"
        elif bar.open >= take:
            price, reason = bar.open, "take_profit"
        elif bar.low <= stop:
            price, reason = stop, "stop_loss"
        elif bar.high >= take:
            price, reason = take, "take_profit"
        if price is not None and reason is not None:
            fills.append(
                _close_position(
                    st,
                    price,
                    bar.ts,
                    reason,
                    cfg,
                    st["entry_candle_time"],
                    st["entry_model_version"],
                    st["entry_confidence"],
                )
            )

    # 3. this bar's signal becomes a pending market order for the next bar's open
    if signal is not None and signal.confidence >= cfg.min_confidence:
        if signal.action == "BUY" and st["qty"] == 0.0 and st["pending"] is None:
            st["pending"] = {
                "side": "BUY",
                "candle_time": signal.candle_time,
                "confidence": signal.confidence,
                "model_version": signal.model_version,
            }
        elif signal.action == "SELL" and st["qty"] > 0.0 and st["pending"] is None:
            st["pending"] = {
                "side": "SELL",
                "candle_time": signal.candle_time,
                "confidence": signal.confidence,
                "model_version": signal.model_version,
            }
    return st, fills
