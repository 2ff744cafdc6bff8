"""Offline backtest: the live code path (features, ensemble, risk step) over history files.

* :mod:`tinhieu.backtest.engine`: signals and the risk step over candles, the figures, the run;
* :mod:`tinhieu.backtest.report`: ``report.md``, ``equity.png``, ``trades.csv``,
  ``orders.jsonl``.

The names importers use are re-exported here (``from tinhieu.backtest import run_backtest``).
"""

from tinhieu.backtest.engine import (
    BacktestError,
    BacktestResult,
    PredictionLike,
    Predictor,
    PredictorFactory,
    StoredPrediction,
    SymbolResult,
    check_training_windows,
    predict_signals,
    run_backtest,
    run_backtest_command,
    signal_classification,
    simulate,
    warmup_candles,
)
from tinhieu.backtest.report import (
    fmt_ms,
    plot_equity,
    read_orders_jsonl,
    write_orders_jsonl,
    write_report,
)

__all__ = [
    "BacktestError",
    "BacktestResult",
    "PredictionLike",
    "Predictor",
    "PredictorFactory",
    "StoredPrediction",
    "SymbolResult",
    "check_training_windows",
    "fmt_ms",
    "plot_equity",
    "predict_signals",
    "read_orders_jsonl",
    "run_backtest",
    "run_backtest_command",
    "signal_classification",
    "simulate",
    "warmup_candles",
    "write_orders_jsonl",
    "write_report",
]
