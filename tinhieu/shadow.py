"""Shadow A/B: the challenger runs on the champion's candles, with a paper book of its own.

When a symbol has a ``challenger`` (MLflow alias), the candle agent hands each batch's
signals and feature rows (what :func:`tinhieu.pipeline.advance` made with the champion) to
:func:`shadow_advance`. The challenger predicts the same rows (one model call per batch),
its signals go to ``signals.shadow`` (never to ``orders``), the broker's rules
(:func:`tinhieu.broker.step`) run them on the shadow's own book, and their outcomes are
tracked by the same label rule as the champion's (:mod:`tinhieu.outcomes`, ``model =
"challenger"``). A :class:`Scoreboard` scores both models on the same candles from the
moment the challenger started: verdicts, accuracy, BUY trades, hit rate, after-fee return of
the BUY verdicts' longs, calibration (Brier score of the confidence).

:func:`promotion_verdict` decides on that evidence: the challenger becomes champion only when
both have enough scored verdicts and BUY trades, its after-fee return beats the champion's by
``promotion_margin_pct`` points, and it beats the naive baselines measured on the same
outcomes (do nothing: a return above 0; always NEUTRAL: a higher accuracy).

State (``record["shadow"]``, in the symbol's record, so a crash repeats and never doubles)::

    {"version": "v3", "model_version": "rf:v3,svm:v3,lr:v3", "since": candle time,
     "book": broker state, "outcomes": tracker state,
     "board": {"champion": {...}, "challenger": {...}}, "decision": None | {...}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinhieu.broker import Fill, RiskConfig, SignalIn, new_state, step
from tinhieu.candles import Bar
from tinhieu.features import MODEL_COLUMNS
from tinhieu.outcomes import OutcomeTracker

MODELS = ("champion", "challenger")
NO_SHADOW_MODEL = "no_model"


def _new_score() -> dict[str, Any]:
    return {"n": 0, "correct": 0, "neutral_labels": 0, "buy_trades": 0, "buy_hits": 0,
            "log_return": 0.0, "brier": 0.0}


@dataclass
class Shadowed:
    """What :func:`shadow_advance` made of one batch."""

    state: dict[str, Any] | None
    signals: list[dict[str, Any]] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    model_error: str | None = None


def score(board: dict[str, Any], outcome: Mapping[str, Any]) -> None:
    """Add one outcome (champion's or challenger's) to the scoreboard, in place."""
    s = board.setdefault(str(outcome.get("model", "champion")), _new_score())
    s["n"] += 1
    s["correct"] += int(bool(outcome["correct"]))
    s["neutral_labels"] += int(outcome["label"] == "NEUTRAL")
    conf = float(outcome["confidence"])
    s["brier"] += (conf - float(bool(outcome["correct"]))) ** 2
    if outcome["action"] == "BUY":
        net = float(outcome["net_return"])
        s["buy_trades"] += 1
        s["buy_hits"] += int(net > 0)
        s["log_return"] += math.log1p(max(net, -0.999999))


def figures(s: Mapping[str, Any] | None) -> dict[str, Any]:
    """Readable figures of one model's score."""
    s = dict(s or _new_score())
    n = int(s["n"])
    trades = int(s["buy_trades"])
    return {
        "n": n,
        "accuracy": s["correct"] / n if n else None,
        "always_neutral_accuracy": s["neutral_labels"] / n if n else None,
        "buy_trades": trades,
        "buy_hit_rate": s["buy_hits"] / trades if trades else None,
        "return_pct": (math.expm1(s["log_return"]) * 100.0) if trades else 0.0,
        "brier": s["brier"] / n if n else None,
    }


def promotion_verdict(board: Mapping[str, Any], *, min_outcomes: int, min_trades: int,
                      margin_pct: float) -> dict[str, Any]:
    """``promote``, ``keep`` or ``wait`` (not enough evidence yet), with the numbers.

    The two models are scored on the same candles (both from the challenger's start). The
    challenger is promoted only when it beats the champion's after-fee return by
    ``margin_pct`` points AND both naive baselines on the same outcomes: doing nothing
    (return > 0) and always NEUTRAL (higher accuracy).
    """
    champ, chal = figures(board.get("champion")), figures(board.get("challenger"))
    out: dict[str, Any] = {"champion": champ, "challenger": chal, "margin_pct": margin_pct,
                           "min_outcomes": min_outcomes, "min_trades": min_trades}
    if min(champ["n"], chal["n"]) < min_outcomes:
        return {**out, "decision": "wait",
                "reason": (f"not enough evidence yet: {chal['n']} challenger and {champ['n']} "
                           f"champion outcomes (need {min_outcomes})")}
    edge = chal["return_pct"] - champ["return_pct"]
    if chal["buy_trades"] < min_trades:  # no trades, no evidence of an edge after fees
        return {**out, "decision": "keep", "edge_pct": edge,
                "reason": (f"keep the champion: the challenger made {chal['buy_trades']} BUY "
                           f"trades over {chal['n']} scored verdicts (need {min_trades}): no "
                           f"evidence of an edge after fees (champion {champ['return_pct']:+.2f} "
                           f"% over {champ['buy_trades']}; edge {edge:+.2f} points)")}
    checks = {
        "beats the champion's after-fee return by the margin": edge >= margin_pct,
        "beats doing nothing (after-fee return > 0)": chal["return_pct"] > 0,
        "beats always-NEUTRAL accuracy": (chal["accuracy"] or 0) > (
            chal["always_neutral_accuracy"] or 0),
    }
    failed = [name for name, ok in checks.items() if not ok]
    numbers = (f"challenger {chal['return_pct']:+.2f} % over {chal['buy_trades']} BUY trades, "
               f"accuracy {chal['accuracy']:.3f} (always NEUTRAL "
               f"{chal['always_neutral_accuracy']:.3f}); champion {champ['return_pct']:+.2f} % "
               f"over {champ['buy_trades']}; edge {edge:+.2f} points (margin {margin_pct:g})")
    if failed:
        return {**out, "decision": "keep", "edge_pct": edge,
                "reason": "keep the champion: the challenger fails: " + "; ".join(failed)
                + f" ({numbers})"}
    return {**out, "decision": "promote", "edge_pct": edge,
            "reason": f"promote the challenger: {numbers}"}


def shadow_advance(
    state: Mapping[str, Any] | None,
    symbol: str,
    signals: Sequence[Mapping[str, Any]],
    rows: Sequence[np.ndarray | None],
    challenger: Any,
    version: str | None,
    risk: RiskConfig,
    label_params: Mapping[str, Any] | None,
    champion_outcomes: Sequence[Mapping[str, Any]] = (),
) -> Shadowed:
    """Run the challenger over a batch the champion has handled.

    ``signals`` and ``rows`` are the champion's (:class:`tinhieu.pipeline.Advanced`), one
    per new candle. ``challenger`` None (or another ``version`` than the state's) ends or
    restarts the shadow. Never modifies ``state``.
    """
    if challenger is None or version is None:
        return Shadowed(None)
    st = dict(state) if state else {}
    if st.get("version") != version or st.get("model_version") != challenger.model_version:
        st = {"version": version, "model_version": challenger.model_version,
              "since": int(signals[0]["candle_time"]) if signals else None,
              "book": new_state(symbol, risk), "outcomes": None,
              "board": {m: _new_score() for m in MODELS}, "decision": None}
    out = Shadowed(st)
    if not signals:
        return out
    board = {m: dict(v) for m, v in (st.get("board") or {}).items()}
    since = int(st["since"]) if st.get("since") is not None else int(signals[0]["candle_time"])
    for outcome in champion_outcomes:
        if int(outcome["candle_time"]) >= since:
            score(board, outcome)

    verdicts: list[Any] = [None] * len(signals)
    usable = [i for i, row in enumerate(rows)
              if row is not None and np.isfinite(np.asarray(row)[MODEL_COLUMNS]).all()]
    if usable and not getattr(challenger, "context_rows", 0):
        try:
            predictions = challenger.predict_many(np.vstack([rows[i] for i in usable]))
            for i, p in zip(usable, predictions, strict=True):
                verdicts[i] = p
        except Exception as exc:  # noqa: BLE001 - a broken challenger stops only itself
            out.model_error = f"{type(exc).__name__}: {exc}"
    elif usable:
        out.model_error = "sequence models (LSTM) are not run in the shadow yet"

    book = st.get("book") or new_state(symbol, risk)
    tracker = (OutcomeTracker(st.get("outcomes"), label_params, symbol, model="challenger")
               if label_params is not None else None)
    for signal, verdict in zip(signals, verdicts, strict=True):
        shadow = dict(signal)
        if verdict is None:
            reason = signal.get("reason") or NO_SHADOW_MODEL
            if reason == "no_model":  # the champion's reason does not apply to the shadow
                reason = "model_error" if out.model_error else "warming_up"
            shadow.update(action="NEUTRAL", confidence=0.0, votes=[],
                          model_version=challenger.model_version, reason=reason,
                          latency_ms=0.0)
        else:
            shadow.update(action=verdict.action, confidence=verdict.confidence,
                          votes=[{"model": v.model, "action": v.action,
                                  "confidence": v.confidence, "version": v.version,
                                  "weight": v.weight} for v in verdict.votes],
                          model_version=verdict.model_version, reason="")
        out.signals.append(shadow)
        bar = Bar(int(signal["candle_time"]), float(signal["open"]), float(signal["high"]),
                  float(signal["low"]), float(signal["close"]), float(signal["volume"]))
        if tracker is not None:
            for outcome in tracker.on_candle(bar, shadow):
                out.outcomes.append(outcome)
                score(board, outcome)
        book, fills = step(book, bar, SignalIn(symbol, bar.ts, shadow["action"],
                                               shadow["confidence"], shadow["model_version"]),
                           risk)
        out.fills.extend(fills)
    st["book"] = book
    if tracker is not None:
        st["outcomes"] = tracker.to_dict()
    st["board"] = board
    out.state = st
    return out


def maybe_decide(state: dict[str, Any], *, min_outcomes: int, min_trades: int,
                 margin_pct: float) -> dict[str, Any] | None:
    """A new verdict when the evidence reached the next multiple of ``min_outcomes``
    (decisions are taken at 1x, 2x, 3x ... the minimum, so a challenger that was kept can
    still win later); ``None`` otherwise. Appends it to ``state["decisions"]`` (in place)."""
    decisions = state.setdefault("decisions", [])
    if decisions and decisions[-1]["decision"] == "promote":
        return None  # decided for good: the champion changes, the shadow starts again
    board = state.get("board") or {}
    n = min(int((board.get(m) or {}).get("n", 0)) for m in MODELS)
    if n < min_outcomes * (len(decisions) + 1):
        return None
    verdict = promotion_verdict(board, min_outcomes=min_outcomes, min_trades=min_trades,
                                margin_pct=margin_pct)
    if verdict["decision"] == "wait":
        return None
    decisions.append({"n": n, "decision": verdict["decision"], "reason": verdict["reason"]})
    del decisions[:-20]
    return verdict
