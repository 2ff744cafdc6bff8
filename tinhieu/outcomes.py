"""Live outcomes of signals: what each candle's label turned out to be, once it is known.

Training labels a candle by the trade the broker would have made from it (the label rule of
:mod:`tinhieu.labels`). Live, the same rule is applied forward: every candle that got a model
verdict opens a *hypothetical* long (a BUY on ``t`` fills at the open of ``t + 1``, stop loss
and take profit from that fill, a time exit ``max_holding`` candles later), and when that
long exits, the candle's outcome is known: ``UP`` (take profit), ``DOWN`` (stop loss, or a
time exit that lost money after fees) or ``NEUTRAL``. The outcome goes next to the signal
(topic ``signal_outcomes``) and into the symbol's rolling quality (``tinhieu.monitoring``).

The exits are decided by :func:`tinhieu.broker.step` itself, as in training: a cheap check
of the candle's range against the nearest levels of all open hypothetical longs finds the
candles on which something may happen, and only those go through the broker's rules. A test
proves that the live outcomes equal :func:`tinhieu.labels.triple_barrier_outcomes` candle for
candle on real data.

State is a small JSON-able dict kept in the symbol's record (``record["outcomes"]``), so it is
written with the window in one changelog message and a re-delivered candle (skipped by the
window) can never resolve an outcome twice: outcomes are deterministic, keyed by
``(symbol, candle_time)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tinhieu.broker import RiskConfig, SignalIn, new_state, step
from tinhieu.candles import Bar
from tinhieu.core_types import ACTION_BY_CLASS, DOWN, NEUTRAL, UP
from tinhieu.labels import classify_returns

_SLACK = 1e-9  # the range check may only find a touch early; the broker then decides
_SYM = "LABEL/USDT"
_CLASS_OF = {action: cls for cls, action in ACTION_BY_CLASS.items()}

# A pending entry (a list, compact in JSON):
#   [candle_time, predicted class, confidence, version index, candles seen at t,
#    entry fill price or None, stop price or None, take price or None, sl pct, tp pct]
# for the fixed-horizon scheme the entry slot holds the close of t.
T, PRED, CONF, VER, AT, ENTRY, STOP, TAKE, SL, TP = range(10)


def new_state_dict() -> dict[str, Any]:
    return {"n": 0, "pending": [], "versions": [], "returns": []}


class OutcomeTracker:
    """Resolve the label of every candle with a verdict, candle by candle.

    Parameters
    ----------
    state : mapping or None
        ``record["outcomes"]`` (``None``: nothing pending yet). Never modified.
    params : mapping
        The label parameters (:func:`tinhieu.labels.label_settings` of the settings).
    symbol : str
        For the outcome records.
    model : str
        ``champion`` (the models that trade) or ``challenger`` (a shadow's).
    """

    def __init__(self, state: Mapping[str, Any] | None, params: Mapping[str, Any],
                 symbol: str, model: str = "champion") -> None:
        st = dict(state) if state else new_state_dict()
        self.symbol = symbol
        self.model = model
        self.params = dict(params)
        self.scheme = self.params.get("scheme", "triple_barrier")
        self.n = int(st.get("n", 0))
        versions = list(st.get("versions", []))
        # Shallow: an entry is copied before it is changed (only the newest ever is, once).
        self.pending: list[list[Any]] = list(st.get("pending", []))
        # versions by index; re-indexed on save
        self._versions = versions
        self._version_index = {v: i for i, v in enumerate(versions)}
        self._returns: list[float] = list(st.get("returns", []))
        self._last_close: float | None = st.get("last_close")
        self.fee_pct = float(self.params.get("fee_pct", 0.1))
        if self.scheme == "fixed_horizon":
            self.horizon = int(self.params["horizon"])
        else:
            self.max_holding = int(self.params.get("max_holding", 240))
            self.mode = self.params.get("barrier_mode", "fixed")
        self._cfgs: dict[tuple[float, float], RiskConfig] = {}
        # The highest stop and the lowest take profit of the open longs (None: to compute):
        # a candle inside both touches nothing, whatever the number of open longs.
        self._high_stop: float | None = None
        self._low_take: float | None = None

    # --- state --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        used = sorted({int(p[VER]) for p in self.pending})
        if used == list(range(len(used))):  # nothing to re-index (the usual case)
            pending = list(self.pending)
        else:
            remap = {old: new for new, old in enumerate(used)}
            pending = [[*p[:VER], remap[int(p[VER])], *p[VER + 1:]] for p in self.pending]
        out: dict[str, Any] = {"n": self.n, "pending": pending,
                               "versions": [self._versions[i] for i in used]}
        if self.scheme != "fixed_horizon" and self.mode == "volatility":
            out["returns"] = self._returns
            out["last_close"] = self._last_close
        return out

    # --- per candle ---------------------------------------------------------------------------
    def on_candle(self, bar: Bar, signal: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """Apply the next closed candle: resolve what it decides, then open this candle's
        hypothetical trade when ``signal`` is a model verdict (``reason`` empty).

        Returns the outcomes resolved by this candle, oldest first.
        """
        self.n += 1
        if self.scheme != "fixed_horizon" and self.mode == "volatility":
            self._advance_volatility(bar)
        resolved = (self._fixed_horizon(bar) if self.scheme == "fixed_horizon"
                    else self._barriers(bar))
        if signal is not None and not signal.get("reason") and signal.get("action") in _CLASS_OF:
            self._open(bar, signal)
        return resolved

    def _open(self, bar: Bar, signal: Mapping[str, Any]) -> None:
        version = str(signal.get("model_version", ""))
        idx = self._version_index.get(version)
        if idx is None:
            idx = len(self._versions)
            self._versions.append(version)
            self._version_index[version] = idx
        pred = _CLASS_OF[signal["action"]]
        conf = float(signal.get("confidence", 0.0))
        if self.scheme == "fixed_horizon":
            self.pending.append([bar.ts, pred, conf, idx, self.n, bar.close, None, None, 0, 0])
            return
        sl, tp = self._levels_pct(bar)
        if sl is None or tp is None:
            return  # volatility barriers still warming up: no label, as in training
        self.pending.append([bar.ts, pred, conf, idx, self.n, None, None, None, sl, tp])

    def _levels_pct(self, bar: Bar) -> tuple[float | None, float | None]:
        p = self.params
        if self.mode == "fixed":
            return float(p["stop_loss_pct"]), float(p["take_profit_pct"])
        if len(self._returns) < int(p.get("vol_window", 60)):
            return None, None
        sigma = float(np.std(self._returns, ddof=1))
        scale = sigma * math.sqrt(self.max_holding) * 100.0
        return (min(max(float(p["stop_vol_mult"]) * scale, 0.1), 50.0),
                min(max(float(p["take_vol_mult"]) * scale, 0.1), 500.0))

    def _advance_volatility(self, bar: Bar) -> None:
        """The last ``vol_window`` 1-candle log returns up to this candle (as in training)."""
        window = int(self.params.get("vol_window", 60))
        if self._last_close is not None and self._last_close > 0 and bar.close > 0:
            self._returns.append(math.log(bar.close / self._last_close))
            del self._returns[:-window]
        self._last_close = bar.close

    def _fixed_horizon(self, bar: Bar) -> list[dict[str, Any]]:
        out = []
        while self.pending and self.n - int(self.pending[0][AT]) >= self.horizon:
            p = self.pending.pop(0)
            ret = bar.close / float(p[ENTRY]) - 1.0
            # the threshold the training labels were asked for (make_scheme_labels)
            thr = float(self.params.get("requested_threshold_pct",
                                        self.params["threshold_pct"]))
            label = int(classify_returns(np.array([ret]), thr, self.fee_pct)[0])
            out.append(self._outcome(p, label, "horizon", bar.ts, ret - 2 * self.fee_pct / 100))
        return out

    def _cfg(self, sl: float, tp: float) -> RiskConfig:
        key = (sl, tp)
        cfg = self._cfgs.get(key)
        if cfg is None:
            cfg = RiskConfig(starting_cash=1_000_000.0, position_size_pct=100.0,
                             stop_loss_pct=sl, take_profit_pct=tp,
                             commission_pct=self.fee_pct, min_confidence=0.0)
            self._cfgs[key] = cfg
        return cfg

    def _barriers(self, bar: Bar) -> list[dict[str, Any]]:
        pending = self.pending
        if not pending:
            return []
        # The newest trade (opened on the previous candle, the only one without an entry)
        # enters at this candle's open.
        if pending[-1][ENTRY] is None:
            p = pending[-1] = list(pending[-1])
            p[ENTRY] = bar.open
            p[STOP] = bar.open * (1.0 - float(p[SL]) / 100.0)
            p[TAKE] = bar.open * (1.0 + float(p[TP]) / 100.0)
            if self._high_stop is not None:
                self._high_stop = max(self._high_stop, p[STOP])
                self._low_take = min(self._low_take, p[TAKE])
        lo = bar.low / (1.0 + _SLACK)
        hi = bar.high / (1.0 - _SLACK)
        out: list[dict[str, Any]] = []
        # The oldest longs whose time is up (they are in candle order), each through the
        # broker's rules; then the others, only when the candle reaches one of their levels.
        first = 0
        while first < len(pending) and self.n - int(pending[first][AT]) >= self.max_holding + 1:
            first += 1
        keep: list[list[Any]] = []
        for p in pending[:first]:
            if not self._resolve(p, bar, out):
                keep.append(p)
        if first:
            self._high_stop = self._low_take = None
            rest = pending[first:]
        else:
            rest = pending
        if rest:
            if self._high_stop is None:
                self._high_stop = max(p[STOP] for p in rest)
                self._low_take = min(p[TAKE] for p in rest)
            if lo > self._high_stop and hi < self._low_take:
                keep.extend(rest)
            else:
                for p in rest:
                    if (lo > p[STOP] and hi < p[TAKE]) or not self._resolve(p, bar, out):
                        keep.append(p)
                self._high_stop = self._low_take = None
        self.pending = keep
        return out

    def _resolve(self, p: list[Any], bar: Bar, out: list[dict[str, Any]]) -> bool:
        """Exit the hypothetical long ``p`` on ``bar`` if the broker would: its outcome to
        ``out``, True; False when it stays open."""
        seen = self.n - int(p[AT])
        fill = self._exit(p, bar, seen)
        if fill is None:
            return False
        price, amount_entry, reason, pnl = fill
        net = pnl / (amount_entry * float(p[ENTRY]))
        if reason == "take_profit":
            label = UP
        elif reason == "stop_loss" or net < 0:
            label = DOWN
        else:
            label = NEUTRAL
        out.append(self._outcome(p, label, "time" if reason == "signal" else reason, bar.ts, net))
        return True

    def _exit(self, p: list[Any], bar: Bar, seen: int) -> tuple[float, float, str, float] | None:
        """The broker's exit of the hypothetical long ``p`` on ``bar``, or None."""
        cfg = self._cfg(float(p[SL]), float(p[TP]))
        t = int(p[T])
        st = new_state(_SYM, cfg)
        st["pending"] = {"side": "BUY", "candle_time": t, "confidence": 1.0,
                         "model_version": "label"}
        st["last_candle_time"] = t
        if seen > 1:  # the long opened earlier at p[ENTRY]: replay that fill on a flat bar
            entry = float(p[ENTRY])
            st, _ = step(st, Bar(t + 1, entry, entry, entry, entry, 0.0), None, cfg)
            if seen == self.max_holding + 1:  # the time exit placed on the previous candle
                st["pending"] = {"side": "SELL", "candle_time": t, "confidence": 1.0,
                                 "model_version": "label"}
        sig = SignalIn(_SYM, bar.ts, "SELL", 1.0, "label") if seen == self.max_holding else None
        amount = float(st["qty"])
        st, fills = step(st, bar, sig, cfg)
        for fill in fills:
            if fill.side == "BUY":
                amount = fill.amount
            else:
                return fill.price, amount, fill.reason, fill.pnl
        return None

    def _outcome(self, p: list[Any], label: int, reason: str, exit_time: int,
                 net: float) -> dict[str, Any]:
        pred = int(p[PRED])
        return {
            "symbol": self.symbol,
            "candle_time": int(p[T]),
            "action": ACTION_BY_CLASS[pred],
            "confidence": float(p[CONF]),
            "model_version": self._versions[int(p[VER])],
            "label": ACTION_BY_CLASS[label],
            "correct": pred == label,
            "exit_reason": reason,
            "exit_time": int(exit_time),
            "net_return": float(net),
            "model": self.model,
        }


OUTBOX_MAX = 500
"""Most outcomes in one ``signal_outcomes`` message (about 300 bytes each: far below Kafka's
1 MB message limit)."""


def outbox(state: Mapping[str, Any] | None, outcomes: list[dict[str, Any]], now: int,
           wait_ms: int) -> tuple[dict[str, Any] | None, list[list[dict[str, Any]]]]:
    """Gather a symbol's outcomes for ``signal_outcomes``: one message per ``wait_ms`` of
    candle time instead of one per outcome.

    ``state`` (``record["outbox"]``: the outcomes not sent yet, oldest first, and the candle
    time they started waiting) is never modified. ``outcomes`` are those the batch resolved,
    in order; ``now`` is the batch's newest candle time. Returns the new state (``None``:
    nothing waits) and the messages to send now, each a list of at most :data:`OUTBOX_MAX`
    outcomes. Sent with the batch and kept in the record written after it, they follow the
    record's protocol: a crash re-sends them (same outcomes), never loses them.
    """
    waiting = list(state["items"]) if state else []
    since = int(state["since"]) if state else now
    if not waiting and outcomes:
        since = int(outcomes[0]["exit_time"])  # the candle that decided the oldest
    waiting.extend(outcomes)
    if not waiting:
        return None, []
    if now - since < wait_ms and len(waiting) < OUTBOX_MAX:
        return {"since": since, "items": waiting}, []
    return None, [waiting[i:i + OUTBOX_MAX] for i in range(0, len(waiting), OUTBOX_MAX)]
