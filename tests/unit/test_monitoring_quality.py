import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from tinhieu.monitoring.quality import QualityState

T0 = 1_620_000_000_000  # ms
MIN = 60_000
DAY_S = 86_400


def outcomes(n: int, seed: int = 0, model: str = "champion", start: int = T0) -> list[dict]:
    rng = np.random.default_rng(seed)
    true = rng.choice([-1, 0, 1], p=[0.45, 0.2, 0.35], size=n)
    pred = np.where(rng.random(n) < 0.4, true, rng.choice([-1, 0, 1], size=n))
    conf = rng.uniform(0.3, 0.95, size=n)
    net = rng.normal(0.001, 0.01, size=n)
    return [{"candle_time": start + i * MIN, "true": int(true[i]), "pred": int(pred[i]),
             "confidence": float(conf[i]),
             "net_return": float(net[i]) if pred[i] == 1 else None, "model": model}
            for i in range(n)]


def test_figures_match_sklearn_on_the_same_outcomes() -> None:
    rows = outcomes(3000)
    q = QualityState()
    assert q.extend(rows) == 3000
    now = rows[-1]["candle_time"]
    s = q.summary(now, 7 * DAY_S)
    y = [r["true"] for r in rows]
    p = [r["pred"] for r in rows]
    assert s["n"] == 3000
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    prec = skm.precision_score(y, p, labels=[1, 0, -1], average=None)
    rec = skm.recall_score(y, p, labels=[1, 0, -1], average=None)
    assert [s["precision"][c] for c in ("BUY", "NEUTRAL", "SELL")] == pytest.approx(prec)
    assert [s["recall"][c] for c in ("BUY", "NEUTRAL", "SELL")] == pytest.approx(rec)
    # calibration: expected calibration error over 10 bins of the confidence
    conf = np.array([r["confidence"] for r in rows])
    ok = np.array(y) == np.array(p)
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(abs(ok[bins == b].sum() - conf[bins == b].sum()) for b in range(10)) / len(rows)
    assert s["calibration_error"] == pytest.approx(ece, abs=1e-3)
    # BUY longs: hit rate, compounded and summed paper return
    nets = np.array([r["net_return"] for r in rows if r["pred"] == 1])
    assert s["buy_trades"] == nets.size
    assert s["buy_hit_rate"] == pytest.approx((nets > 0).mean())
    assert s["paper_return_pct"] == pytest.approx((np.prod(1 + nets) - 1) * 100, rel=1e-4)
    assert s["paper_return_sum_pct"] == pytest.approx(nets.sum() * 100, rel=1e-4)
    # the naive "always NEUTRAL" rule
    assert s["baseline"]["accuracy"] == pytest.approx(np.mean(np.array(y) == 0))
    assert s["baseline"]["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(y, [0] * len(y)))
    assert s["baseline"]["buy_precision"] == pytest.approx(np.mean(np.array(y) == 1))
    json.dumps(s)


def test_idempotent_and_out_of_order_exits() -> None:
    rows = outcomes(500)
    q = QualityState()
    q.extend(rows)
    before = json.dumps(q.to_dict())
    assert q.extend(rows) == 0  # a re-delivered batch adds nothing
    assert json.dumps(q.to_dict()) == before
    # with exit_time, a later candle resolved first does not hide an earlier one
    q2 = QualityState()
    late = {**rows[0], "candle_time": T0 + 10 * MIN, "exit_time": T0 + 20 * MIN}
    early = {**rows[1], "candle_time": T0 + 5 * MIN, "exit_time": T0 + 25 * MIN}
    assert q2.add(late) and q2.add(early)
    assert not q2.add(late) and not q2.add(early)
    assert q2.summary(T0 + 30 * MIN, DAY_S)["n"] == 2


def test_windows_models_and_json_round_trip() -> None:
    q = QualityState()
    rows = outcomes(8 * 1440, seed=1) + outcomes(1440, seed=2, model="challenger",
                                                  start=T0 + 7 * 1440 * MIN)
    rows.sort(key=lambda r: r["candle_time"])
    q.extend(rows)
    now = T0 + (8 * 1440 - 1) * MIN
    q = QualityState.from_dict(json.loads(json.dumps(q.to_dict())))
    day = q.summary(now, DAY_S)
    week = q.summary(now, 7 * DAY_S)
    assert abs(day["n"] - 1440) <= 120  # exact to one 2-hour bucket
    assert 6 * 1440 <= week["n"] <= 7 * 1440  # exact to one day beyond the newest day
    assert q.summary(now, DAY_S, model="challenger")["n"] == pytest.approx(1440, abs=120)
    assert q.summary(now, DAY_S, model="nobody")["n"] == 0
    assert q.summary(now, DAY_S, model="nobody")["accuracy"] is None
    # the newest day, 1-hour resolution: a fresh state with hourly buckets
    hourly = QualityState(bucket_s=3600)
    hourly.extend(rows)
    assert abs(hourly.summary(now, DAY_S)["n"] - 1440) <= 60


def test_seven_days_of_minutes_fit_the_record_budget() -> None:
    q = QualityState()
    q.extend(sorted(outcomes(7 * 1440, seed=3) + outcomes(7 * 1440, seed=4, model="challenger"),
                    key=lambda r: r["candle_time"]))
    size = len(json.dumps(q.to_dict(), separators=(",", ":")))
    assert size < 7_000, size  # both models; about half with the champion alone


def test_outcome_records_of_the_tracker_are_taken() -> None:
    q = QualityState()
    q.add({"candle_time": T0, "action": "BUY", "label": "SELL", "confidence": 0.7,
           "net_return": -0.021, "model": "champion", "exit_time": T0 + 5 * MIN})
    s = q.summary(T0, DAY_S)
    assert s["n"] == 1 and s["accuracy"] == 0.0 and s["buy_hit_rate"] == 0.0
    assert s["precision"]["BUY"] == 0.0 and s["precision"]["SELL"] is None
    assert s["paper_return_pct"] == pytest.approx(-2.1, abs=1e-4)
    assert s["calibration_error"] == pytest.approx(0.7)
    assert not math.isnan(s["balanced_accuracy"])


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple"):
        QualityState(bucket_s=7000, coarse_bucket_s=86_400)
    with pytest.raises(ValueError):
        QualityState().add({"candle_time": T0, "true": 2, "pred": 0, "confidence": 0.5})
