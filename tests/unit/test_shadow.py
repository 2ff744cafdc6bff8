"""Shadow A/B with real models: the challenger on the champion's candles, scored on the same
outcomes, and the promotion rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinhieu.broker import RiskConfig
from tinhieu.candles import Bar, ValidCandle
from tinhieu.data import load_candles, parse_time
from tinhieu.features import WARMUP
from tinhieu.labels import label_settings
from tinhieu.pipeline import advance
from tinhieu.registry import open_registry
from tinhieu.settings import load_settings
from tinhieu.shadow import figures, maybe_decide, promotion_verdict, score, shadow_advance
from tinhieu.signals import ModelCache
from tinhieu.tradelog import TradeLog
from tinhieu.training import train_quick

RISK = RiskConfig(min_confidence=0.45)
WEIGHTS = {"rf": 1.0, "svm": 1.0, "lr": 1.0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_1m: Path):
    """An MLflow store with v1 (champion, trained on 10-12 Apr 2021) and v2 (challenger,
    trained on 24-26 Apr 2021), and the candles of the day after."""
    root = tmp_path_factory.mktemp("var")
    settings = load_settings(data_dir=root, min_confidence=0.45, max_holding_candles=30)
    registry = open_registry(settings)
    for start, end in (("2021-04-10", "2021-04-12T12:00"), ("2021-04-26", "2021-04-28T12:00")):
        df = load_candles(data_1m / "BTCUSDT_1m.csv.gz", parse_time(start), parse_time(end))
        train_quick(df, "BTC/USDT", settings, registry)
    aliases = registry.aliases("BTC/USDT")
    assert aliases == {"champion": "v1", "challenger": "v2"}, aliases
    day = load_candles(data_1m / "BTCUSDT_1m.csv.gz", parse_time("2021-04-28T12:00"),
                       parse_time("2021-04-29T12:00"))
    return settings, registry, day


def _candles(df) -> list:
    return [(ValidCandle("BTC/USDT", Bar(int(r[0]), *map(float, r[1:6]))), offset)
            for offset, r in enumerate(df.itertuples(index=False))]


def _run(settings, champion, challenger, version, candles, size):
    params = label_settings(settings)
    record, shadow_signals, outcomes, states = None, [], [], []
    for start in range(0, len(candles), size):
        step = advance(record, "BTC/USDT", candles[start:start + size], champion, RISK,
                       window_size=60, timeframe_ms=60_000, label_params=params)
        shadowed = shadow_advance((record or {}).get("shadow"), "BTC/USDT", step.signals,
                                  step.rows, challenger, version, RISK, params, step.outcomes)
        step.record["shadow"] = shadowed.state
        record = json.loads(json.dumps(step.record))  # through the table's JSON
        shadow_signals += shadowed.signals
        outcomes += shadowed.outcomes
        states.append(shadowed.state)
    return record, shadow_signals, outcomes


def test_the_challenger_runs_on_the_same_candles_with_its_own_book(trained) -> None:
    settings, registry, day = trained
    cache = ModelCache(registry, weights=WEIGHTS, min_confidence=0.45)
    champion = cache.refresh("BTC/USDT")
    challenger = cache.challenger("BTC/USDT")
    assert champion is not None and challenger is not None
    assert cache.challenger_version("BTC/USDT") == "v2"
    assert champion.model_version != challenger.model_version
    assert cache.status()["shadow"]["BTC/USDT"] == challenger.model_version

    candles = _candles(day)
    record, signals, outcomes = _run(settings, champion, challenger, "v2", candles, 97)
    # one shadow signal per candle, for the same candles, from the challenger
    assert [s["candle_time"] for s in signals] == day["timestamp"].tolist()
    verdicts = [s for s in signals if not s["reason"]]
    assert len(verdicts) == len(day) - (WARMUP - 1)
    assert {s["model_version"] for s in verdicts} == {challenger.model_version}
    # its outcomes are scored as the challenger's; the board holds both on the same candles
    assert outcomes and {o["model"] for o in outcomes} == {"challenger"}
    board = record["shadow"]["board"]
    champ, chal = figures(board["champion"]), figures(board["challenger"])
    assert chal["n"] == len(outcomes) and abs(champ["n"] - chal["n"]) <= 1
    # its own book: the champion's book is not touched by it
    assert record["shadow"]["book"] != record["book"]
    # any batching gives the same shadow (deterministic, through JSON)
    again, signals_1, _ = _run(settings, champion, challenger, "v2", candles, 500)
    assert [s["action"] for s in signals_1] == [s["action"] for s in signals]
    assert again["shadow"]["board"] == board


def test_the_same_model_as_shadow_scores_the_same_and_is_kept(trained) -> None:
    settings, registry, day = trained
    champion = ModelCache(registry, weights=WEIGHTS, min_confidence=0.45).refresh("BTC/USDT")
    record, signals, _ = _run(settings, champion, champion, "v1", _candles(day), 200)
    board = record["shadow"]["board"]
    assert figures(board["champion"]) == figures(board["challenger"])
    verdict = promotion_verdict(board, min_outcomes=1, min_trades=0, margin_pct=0.5)
    assert verdict["decision"] == "keep" and "margin" in verdict["reason"]


def _board(champion_return: float, challenger_return: float, n: int = 100,
           correct: int = 60, neutral: int = 40, trades: int = 20) -> dict:
    """Both models with ``n`` outcomes (``correct`` right, ``neutral`` NEUTRAL labels) and
    ``trades`` BUY longs whose returns compound to the given totals (fractions)."""
    import math

    from tinhieu.shadow import _new_score

    board = {}
    for model, total in (("champion", champion_return), ("challenger", challenger_return)):
        s = _new_score()
        s.update(n=n, correct=correct, neutral_labels=neutral, buy_trades=trades,
                 buy_hits=trades // 2, log_return=math.log1p(total), brier=0.2 * n)
        board[model] = s
    score(board, {"model": "champion", "label": "NEUTRAL", "action": "NEUTRAL",
                  "correct": True, "confidence": 0.5, "net_return": 0.0})
    return board


def test_promotion_needs_the_margin_and_the_baselines() -> None:
    win = _board(0.0, 0.05)
    verdict = promotion_verdict(win, min_outcomes=50, min_trades=10, margin_pct=1.0)
    assert verdict["decision"] == "promote", verdict["reason"]
    assert verdict["challenger"]["return_pct"] > verdict["champion"]["return_pct"] + 1.0
    small = promotion_verdict(_board(0.04, 0.045), min_outcomes=50, min_trades=10,
                              margin_pct=1.0)
    assert small["decision"] == "keep" and "margin" in small["reason"]
    losing = promotion_verdict(_board(-0.10, -0.02), min_outcomes=50, min_trades=10,
                               margin_pct=1.0)
    assert losing["decision"] == "keep" and "doing nothing" in losing["reason"]
    early = promotion_verdict(win, min_outcomes=500, min_trades=10, margin_pct=1.0)
    assert early["decision"] == "wait"
    idle = promotion_verdict(_board(-0.05, 0.0, trades=0), min_outcomes=50, min_trades=10,
                             margin_pct=1.0)
    assert idle["decision"] == "keep" and "0 BUY trades" in idle["reason"]


def test_decisions_at_each_multiple_and_none_after_a_promotion() -> None:
    state = {"board": _board(0.04, 0.045)}
    assert maybe_decide(state, min_outcomes=60, min_trades=10, margin_pct=1.0)["decision"] \
        == "keep"
    assert maybe_decide(state, min_outcomes=60, min_trades=10, margin_pct=1.0) is None
    state["board"] = _board(0.0, 0.05, n=130)
    assert maybe_decide(state, min_outcomes=60, min_trades=10, margin_pct=1.0)["decision"] \
        == "promote"
    state["board"] = _board(0.0, 0.05, n=300)
    assert maybe_decide(state, min_outcomes=60, min_trades=10, margin_pct=1.0) is None
    assert [d["decision"] for d in state["decisions"]] == ["keep", "promote"]


def test_a_decision_is_recorded_in_mlflow_and_the_trade_log(trained, tmp_path) -> None:
    settings, registry, _ = trained
    registry.record_decision("BTC/USDT", "v2", "keep", "keep: edge +0.1 below 0.5",
                             actor="shadow")
    kept = [e for e in registry.history("BTC/USDT") if e["action"] == "keep"]
    assert kept and kept[-1]["actor"] == "shadow" and "edge" in kept[-1]["reason"]
    log = TradeLog(tmp_path / "trades.db")
    assert log.record_decision("BTC/USDT", 1, "v2", "keep", "shadow", "why", {"edge_pct": 0.1})
    assert not log.record_decision("BTC/USDT", 1, "v2", "keep", "shadow", "why", {})
    [row] = log.decisions("BTC/USDT")
    assert row["decision"] == "keep" and json.loads(row["evidence"]) == {"edge_pct": 0.1}
    log.close()
