"""Without the deep extra (Keras, JAX), the worker, training and the backtest run as before.

A subprocess whose ``sys.meta_path`` refuses ``keras``, ``jax`` and ``jaxlib`` (as if they were
not installed, whatever this environment has) imports the worker app, trains rf + lr on a
small slice of real candles, backtests them, and checks that asking for ``lstm`` fails with a
message naming ``pip install -e .[deep]`` and that Keras/JAX were never imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    from pathlib import Path

    class NoDeepExtra(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("keras", "jax", "jaxlib"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoDeepExtra())
    data_1m, tmp = Path(sys.argv[1]), Path(sys.argv[2])

    import streams.app  # noqa: F401  (the worker's code path: app, agents, tables)
    from tinhieu import deep
    from tinhieu.backtest.engine import run_backtest
    from tinhieu.data import load_candles, parse_time
    from tinhieu.ensemble import Ensemble
    from tinhieu.registry import ModelRegistry
    from tinhieu.settings import load_settings
    from tinhieu.training import TrainingError, train_quick

    out = {"available": deep.available()}
    df = load_candles(data_1m / "BTCUSDT_1m.csv.gz", parse_time("2021-04-10"),
                      parse_time("2021-04-13T12:00"))
    train_df, test_df = df.iloc[:4000], df.iloc[4000 - 300:]
    registry = ModelRegistry(tmp / "models")
    settings = load_settings(data_dir=tmp, model_dir=tmp / "models", algorithms="rf,lr")
    res = train_quick(train_df, "BTC/USDT", settings, registry)
    out["versions"] = sorted(res.versions)
    out["members"] = [m.algorithm for m in
                      Ensemble.from_registry(registry, "BTC/USDT", min_confidence=0.45).members]
    bt = run_backtest({"BTC/USDT": test_df}, settings, registry,
                      start_ms=int(test_df["timestamp"].iloc[300]), end_ms=None,
                      out_dir=tmp / "bt", progress=False)
    out["backtest"] = type(bt).__name__
    try:
        train_quick(train_df, "BTC/USDT", settings.model_copy(update={"algorithms": "rf,lstm"}),
                    registry)
        out["lstm_error"] = None
    except TrainingError as exc:
        out["lstm_error"] = str(exc)
    out["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "jax"))
    print("RESULT " + json.dumps(out))
    """
)


def test_worker_training_and_backtest_run_without_the_deep_extra(tmp_path, data_1m) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINHIEU_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_1m), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    assert out["available"] is False
    assert out["versions"] == ["lr", "rf"]
    assert out["members"] == ["rf", "lr"]
    assert out["backtest"] == "BacktestResult"
    assert "pip install -e .[deep]" in out["lstm_error"]
    assert out["imported"] == []
