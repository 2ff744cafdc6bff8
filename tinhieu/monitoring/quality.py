"""Rolling live quality of a symbol's signals, from their outcomes, per model.

Every signal with a model verdict gets an outcome once its label is known
(:mod:`tinhieu.outcomes`). :class:`QualityState` folds the outcomes into counts per time
bucket, so any window up to ``max_window_s`` can be summarised later, and the whole state
is a small JSON-able dict stored in the symbol's record (written once per batch).

Layout (per model, ``champion`` and ``challenger`` apart):

* fine buckets of ``bucket_s`` (default 2 hours) for the newest ``coarse_bucket_s``
  (default 1 day), coarse buckets of ``coarse_bucket_s`` beyond, up to ``max_window_s``
  (default 7 days): a 1-day window is exact to 2 hours, a 7-day window to the day. Measured
  with 7 days of 1-minute outcomes (confidences spread over 8 bins, 10 % BUY): 3.3 KB of
  compact JSON per model, 6.5 KB with a challenger; hourly fine buckets (``bucket_s=3600``)
  take 4.7 KB per model;
* per bucket: the confusion matrix (3 x 3 counts), 10 calibration bins of the confidence
  (count, sum of confidence, count correct, only non-empty bins), the BUY signals' trades,
  hits (after-fee net return > 0), sum of net returns and sum of ``log(1 + net return)``.

The classification figures come from ``river.metrics`` fed with the summed counts as
weights (accuracy, balanced accuracy, per-class precision and recall); the expected
calibration error is ``sum over bins |sum(correct) - sum(confidence)| / n``.

Idempotence: an outcome at or before the newest one already added for its model is ignored,
so a re-delivered batch adds nothing. The order is ``(exit_time, candle_time)`` when the
outcome carries ``exit_time`` (outcomes of triple-barrier labels resolve out of candle order:
a later long can hit its take profit before an earlier one times out), else ``candle_time``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from river import metrics

__all__ = ["CLASS_NAMES", "MODELS", "QualityState"]

CLASS_NAMES: dict[int, str] = {-1: "SELL", 0: "NEUTRAL", 1: "BUY"}
"""Class -> name of the action (the label DOWN/NEUTRAL/UP is named by its action)."""
MODELS: tuple[str, ...] = ("champion", "challenger")
N_BINS = 10
_NAME_CLASS = {"SELL": -1, "DOWN": -1, "NEUTRAL": 0, "BUY": 1, "UP": 1}

# a bucket: [index, cm (9 counts, row = true class + 1, column = predicted class + 1),
#            calibration (flat [bin, n, sum confidence, n correct, ...], non-empty bins),
#            BUY trades, BUY hits, sum of net returns, sum of log(1 + net return)]
# Sums are integers (short in JSON, exact when merged): confidence in 1/1000, returns in
# millionths; each value is rounded once, when it is added.
CONF_UNIT = 1000
RET_UNIT = 1_000_000
IDX, CM, CAL, TRADES, HITS, NET, LOG = range(7)


def _new_bucket(index: int) -> list[Any]:
    return [index, [0] * 9, [], 0, 0, 0, 0]


def _class(value: Any) -> int:
    if isinstance(value, str):
        return _NAME_CLASS[value.upper()]
    c = int(value)
    if c not in CLASS_NAMES:
        raise ValueError(f"class {value!r} is not -1, 0 or 1")
    return c


def _order_key(outcome: Mapping[str, Any]) -> list[int]:
    t = int(outcome["candle_time"])
    exit_time = outcome.get("exit_time")
    return [int(exit_time), t] if exit_time is not None else [t, t]


class QualityState:
    """Bucketed outcome counts of one symbol, per model.

    Parameters
    ----------
    bucket_s : int
        Seconds per fine bucket (the resolution of short windows).
    max_window_s : int
        Longest window a summary can cover; older buckets are dropped.
    coarse_bucket_s : int, optional
        Seconds per coarse bucket, a multiple of ``bucket_s``: fine buckets older than
        this are merged into coarse ones. Default ``max(bucket_s, 86400)``; equal to
        ``bucket_s`` keeps fine buckets only.
    """

    def __init__(self, bucket_s: int = 7200, max_window_s: int = 7 * 86_400,
                 coarse_bucket_s: int | None = None) -> None:
        coarse = int(coarse_bucket_s if coarse_bucket_s is not None else max(bucket_s, 86_400))
        if bucket_s <= 0 or max_window_s < bucket_s or coarse % bucket_s:
            raise ValueError(
                f"bucket_s {bucket_s} must be > 0, max_window_s {max_window_s} >= bucket_s, "
                f"and coarse_bucket_s {coarse} a multiple of bucket_s")
        self.bucket_s = int(bucket_s)
        self.max_window_s = int(max_window_s)
        self.coarse_bucket_s = coarse
        # model -> {"last": order key of the newest added, "newest": newest candle (s),
        #           "fine": [buckets], "coarse": [buckets], "late": outcomes too old}
        self._models: dict[str, dict[str, Any]] = {}

    # --- state --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"bucket_s": self.bucket_s, "max_window_s": self.max_window_s,
                "coarse_bucket_s": self.coarse_bucket_s,
                "models": {m: {"last": d["last"], "newest": d["newest"], "fine": d["fine"],
                               "coarse": d["coarse"], "late": d["late"]}
                           for m, d in self._models.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, **defaults: int) -> QualityState:
        """The state saved by :meth:`to_dict`; ``None`` gives a new one built with
        ``defaults`` (the constructor's arguments)."""
        if not d:
            return cls(**defaults)
        state = cls(bucket_s=int(d["bucket_s"]), max_window_s=int(d["max_window_s"]),
                    coarse_bucket_s=int(d.get("coarse_bucket_s", d["bucket_s"])))
        for model, md in (d.get("models") or {}).items():
            state._models[str(model)] = {
                "last": list(md.get("last") or [-1, -1]),
                "newest": int(md.get("newest", -1)),
                "fine": [list(b) for b in md.get("fine") or []],
                "coarse": [list(b) for b in md.get("coarse") or []],
                "late": int(md.get("late", 0)),
            }
        return state

    def _model(self, model: str) -> dict[str, Any]:
        md = self._models.get(model)
        if md is None:
            md = self._models[model] = {"last": [-1, -1], "newest": -1, "fine": [],
                                        "coarse": [], "late": 0}
        return md

    # --- adding -------------------------------------------------------------------------------
    def add(self, outcome: Mapping[str, Any]) -> bool:
        """Fold one outcome in; return False when it was ignored (already added, or older
        than ``max_window_s`` before the newest).

        ``outcome``: ``candle_time`` (ms), ``true`` and ``pred`` (-1/0/1, or the names
        ``SELL``/``NEUTRAL``/``BUY``; or ``label`` and ``action`` as
        :mod:`tinhieu.outcomes` names them), ``confidence`` (0..1), ``net_return`` (the
        after-fee return of the BUY's long, None when not a BUY), ``model`` (default
        ``champion``), optionally ``exit_time`` (ms, see the module docstring).
        """
        md = self._model(str(outcome.get("model") or "champion"))
        key = _order_key(outcome)
        if key <= md["last"]:
            return False
        true = _class(outcome["true"] if "true" in outcome else outcome["label"])
        pred = _class(outcome["pred"] if "pred" in outcome else outcome["action"])
        conf = min(max(float(outcome.get("confidence") or 0.0), 0.0), 1.0)
        t_s = int(outcome["candle_time"]) // 1000
        newest_s = max(t_s, int(md["newest"]))
        md["last"] = key
        md["newest"] = newest_s
        if t_s <= newest_s - self.max_window_s:
            md["late"] += 1
            return False
        bucket = self._bucket_for(md, t_s, newest_s)
        bucket[CM][(true + 1) * 3 + pred + 1] += 1
        _add_calibration(bucket[CAL], min(int(conf * N_BINS), N_BINS - 1), conf, true == pred)
        net = outcome.get("net_return")
        if pred == 1 and net is not None and math.isfinite(float(net)):
            net = float(net)
            bucket[TRADES] += 1
            bucket[HITS] += int(net > 0)
            bucket[NET] += round(net * RET_UNIT)
            bucket[LOG] += round(math.log1p(max(net, -0.999999)) * RET_UNIT)
        if newest_s // self.bucket_s != md.get("_rolled"):  # a new bucket began: roll once
            md["_rolled"] = newest_s // self.bucket_s
            self._roll(md, newest_s)
        return True

    def extend(self, outcomes: Iterable[Mapping[str, Any]]) -> int:
        """Add several outcomes; return how many were taken."""
        return sum(self.add(o) for o in outcomes)

    def _bucket_for(self, md: dict[str, Any], t_s: int, newest_s: int) -> list[Any]:
        fine_from = newest_s - self.coarse_bucket_s  # fine buckets end after this
        if self.coarse_bucket_s == self.bucket_s or (t_s // self.bucket_s + 1) * self.bucket_s \
                > fine_from:
            return _find(md["fine"], t_s // self.bucket_s)
        return _find(md["coarse"], t_s // self.coarse_bucket_s)

    def _roll(self, md: dict[str, Any], newest_s: int) -> None:
        """Merge fine buckets older than ``coarse_bucket_s`` into coarse ones; drop what
        lies wholly before ``max_window_s``."""
        if self.coarse_bucket_s != self.bucket_s:
            fine_from = newest_s - self.coarse_bucket_s
            keep = []
            for b in md["fine"]:
                if (b[IDX] + 1) * self.bucket_s > fine_from:
                    keep.append(b)
                else:
                    _merge(_find(md["coarse"], b[IDX] * self.bucket_s // self.coarse_bucket_s), b)
            md["fine"] = keep
        oldest = newest_s - self.max_window_s
        md["fine"] = [b for b in md["fine"] if (b[IDX] + 1) * self.bucket_s > oldest]
        md["coarse"] = [b for b in md["coarse"]
                        if (b[IDX] + 1) * self.coarse_bucket_s > oldest]

    # --- reading ------------------------------------------------------------------------------
    def models(self) -> list[str]:
        return sorted(self._models)

    def summary(self, now_ms: int, window_s: int, model: str = "champion") -> dict[str, Any]:
        """Quality of ``model``'s outcomes whose candle lies in ``(now - window_s, now]``.

        The window is exact to one bucket: a bucket counts when its start lies inside it
        (fine buckets for the newest ``coarse_bucket_s``, coarse ones beyond).

        Returns
        -------
        dict
            ``model``, ``window_s``, ``n``; ``accuracy``, ``balanced_accuracy``,
            ``precision`` and ``recall`` (per class ``BUY``/``NEUTRAL``/``SELL``; None when
            the class was never predicted / never true); ``confusion`` (true -> predicted
            -> count); ``calibration_error`` (expected calibration error over 10 bins of
            the confidence) and ``calibration`` (per non-empty bin: n, mean confidence,
            accuracy); ``buy_trades``, ``buy_hits``, ``buy_hit_rate`` (share of BUY longs
            with an after-fee net return > 0), ``paper_return_pct`` (COMPOUNDED: every BUY's
            long with the whole capital, one after the other), ``paper_return_sum_pct``
            (the sum of the net returns), ``mean_net_return_pct``; ``baseline``: the
            "always NEUTRAL" rule's ``accuracy`` and ``balanced_accuracy``, the majority
            class's ``majority_accuracy`` (chosen in hindsight), and ``buy_precision`` (the
            share of UP outcomes: the precision of a BUY on every candle). Figures are None
            when ``n`` is 0.
        """
        md = self._models.get(model)
        now_s = int(now_ms) // 1000
        start_s = now_s - int(window_s)
        total = _new_bucket(0)
        if md is not None:
            for b in md["fine"]:
                if start_s < b[IDX] * self.bucket_s <= now_s:
                    _merge(total, b)
            for b in md["coarse"]:
                if start_s < b[IDX] * self.coarse_bucket_s <= now_s:
                    _merge(total, b)
        return _figures(total, model, int(window_s))


def _find(buckets: list[list[Any]], index: int) -> list[Any]:
    for b in buckets:
        if b[IDX] == index:
            return b
    b = _new_bucket(index)
    buckets.append(b)
    buckets.sort(key=lambda x: x[IDX])
    return b


def _add_calibration(cal: list[Any], bin_: int, conf: float, correct: bool) -> None:
    for i in range(0, len(cal), 4):
        if cal[i] == bin_:
            cal[i + 1] += 1
            cal[i + 2] += round(conf * CONF_UNIT)
            cal[i + 3] += int(correct)
            return
    cal.extend([bin_, 1, round(conf * CONF_UNIT), int(correct)])


def _merge(into: list[Any], b: list[Any]) -> None:
    into[CM] = [x + y for x, y in zip(into[CM], b[CM], strict=True)]
    for i in range(0, len(b[CAL]), 4):
        bin_, n, conf, ok = b[CAL][i: i + 4]
        for j in range(0, len(into[CAL]), 4):
            if into[CAL][j] == bin_:
                into[CAL][j + 1] += n
                into[CAL][j + 2] += conf
                into[CAL][j + 3] += ok
                break
        else:
            into[CAL].extend([bin_, n, conf, ok])
    into[TRADES] += b[TRADES]
    into[HITS] += b[HITS]
    into[NET] += b[NET]
    into[LOG] += b[LOG]


def _figures(total: list[Any], model: str, window_s: int) -> dict[str, Any]:
    cm_counts = total[CM]
    n = int(sum(cm_counts))
    names = [CLASS_NAMES[c] for c in (-1, 0, 1)]
    out: dict[str, Any] = {"model": model, "window_s": window_s, "n": n}
    cm = metrics.ConfusionMatrix()
    for i, t in enumerate(names):
        for j, p in enumerate(names):
            if cm_counts[i * 3 + j]:
                cm.update(t, p, w=cm_counts[i * 3 + j])
    row = {t: sum(cm_counts[i * 3: i * 3 + 3]) for i, t in enumerate(names)}
    col = {p: sum(cm_counts[j::3]) for j, p in enumerate(names)}
    has = n > 0
    out["accuracy"] = metrics.Accuracy(cm=cm).get() if has else None
    out["balanced_accuracy"] = metrics.BalancedAccuracy(cm=cm).get() if has else None
    out["precision"] = {c: (metrics.Precision(cm=cm, pos_val=c).get() if col[c] else None)
                        for c in reversed(names)}
    out["recall"] = {c: (metrics.Recall(cm=cm, pos_val=c).get() if row[c] else None)
                     for c in reversed(names)}
    out["confusion"] = {t: {p: cm_counts[i * 3 + j] for j, p in enumerate(names)}
                        for i, t in enumerate(names)}
    cal = total[CAL]
    bins = sorted((cal[i: i + 4] for i in range(0, len(cal), 4)), key=lambda b: b[0])
    out["calibration_error"] = (sum(abs(ok - conf / CONF_UNIT) for _, _, conf, ok in bins) / n
                                if has else None)
    out["calibration"] = [{"bin": [b / N_BINS, (b + 1) / N_BINS], "n": k,
                           "confidence": conf / CONF_UNIT / k, "accuracy": ok / k}
                          for b, k, conf, ok in bins if k]
    trades, hits = int(total[TRADES]), int(total[HITS])
    out["buy_trades"] = trades
    out["buy_hits"] = hits
    out["buy_hit_rate"] = hits / trades if trades else None
    net, log = total[NET] / RET_UNIT, total[LOG] / RET_UNIT
    out["paper_return_pct"] = math.expm1(log) * 100.0 if trades else None
    out["paper_return_sum_pct"] = net * 100.0 if trades else None
    out["mean_net_return_pct"] = net / trades * 100.0 if trades else None
    supported = sum(1 for v in row.values() if v)
    out["baseline"] = {
        "accuracy": row["NEUTRAL"] / n if has else None,
        "balanced_accuracy": (1.0 / supported if row["NEUTRAL"] else 0.0) if has else None,
        "majority_accuracy": max(row.values()) / n if has else None,
        "buy_precision": row["BUY"] / n if has else None,
    }
    return out
