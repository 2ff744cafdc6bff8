"""Retraining from the stream: the candles ``market_data`` keeps become a training set.

``faust -A streams.app retrain`` (and the leader's scheduled retrain, ``retrain_interval_h``)
reads the symbol's partition of ``market_data`` (Kafka keeps ``market_data_retention_days``
of it), turns the messages into a candle frame with :func:`candles_from_messages` (decoded
and validated like the live path, :func:`tinhieu.candles.candle_from_message`; bad messages
and duplicates dropped and counted, sorted by open time, gaps reported), and trains it
through the same walk-forward harness and promotion gate as ``train``
(:func:`tinhieu.training.train_symbol`, actor ``retrain``). With a champion in the MLflow
registry a version that passes the gate becomes ``challenger``; the champion keeps serving.

Nothing here imports Faust: the command and the timer are thin callers.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tinhieu.candles import CandleError, candle_from_message
from tinhieu.data import COLUMNS

DAY_MS = 86_400_000
MARKET_DATA = "market_data"


def retention_ms(days: int) -> int:
    """``market_data_retention_days`` as the topic's ``retention.ms``."""
    return int(days) * DAY_MS


def market_data_configs(retention_days: int) -> dict[str, str]:
    """Topic configs of ``market_data`` when a command (not the worker) creates it."""
    return {"retention.ms": str(retention_ms(retention_days))}


def retention_warning(topic: str, configs: Mapping[str, str] | None,
                      retention_days: int) -> str | None:
    """What to tell the operator when an existing topic keeps less than the setting asks.

    A topic that existed before the setting (or was created by the broker with its default,
    7 days) keeps its own ``retention.ms``: Kafka changes it only when asked. None when the
    topic keeps at least ``retention_days`` (``-1``: forever) or does not exist.
    """
    if not configs or "retention.ms" not in configs:
        return None
    try:
        actual = int(configs["retention.ms"])
    except (TypeError, ValueError):
        return None
    wanted = retention_ms(retention_days)
    if actual < 0 or actual >= wanted:
        return None
    return (
        f"topic {topic} keeps {actual / DAY_MS:g} days (retention.ms={actual}) but "
        f"market_data_retention_days (TINHIEU_MARKET_DATA_RETENTION_DAYS) asks for "
        f"{retention_days}: retrain can read at most {actual / DAY_MS:g} days. The topic "
        "existed before the setting; change it with: kafka-configs.sh --bootstrap-server "
        f"<broker> --alter --entity-type topics --entity-name {topic} --add-config "
        f"retention.ms={wanted}"
    )


def min_candles(label_params: Mapping[str, Any], n_splits: int, warmup: int,
                calibration_share: float | None = None) -> dict[str, int]:
    """Candles :func:`tinhieu.training.train_symbol` needs at least, and why.

    ``rows``: usable rows for ``n_splits`` folds, ``(n_splits + 1) * max(50, 2 * span)``;
    with calibration (``calibration_share``) also enough for the first fold's training set
    (about ``rows / (n_splits + 1) - span``) to hold 50 calibration rows and 50 fit rows
    after a purge of ``span``. Plus the features' ``warmup`` and the label ``span`` (the last
    candles have no label). Gaps cost more (rows beside a gap are dropped), so this is the
    floor, not a promise.
    """
    if label_params.get("scheme") == "fixed_horizon":
        span = int(label_params["horizon"])
    else:
        span = int(label_params["max_holding"]) + 1
    rows = (n_splits + 1) * max(50, 2 * span)
    if calibration_share:
        first_fold = math.ceil(max(50 / calibration_share,
                                   (50 + span) / (1 - calibration_share)))
        rows = max(rows, (n_splits + 1) * (first_fold + span + 1))
    return {"candles": warmup + span + rows, "warmup": warmup, "span": span, "rows": rows}


def iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Gap:
    """Candles missing between two held ones (open times in ms)."""

    after_ms: int
    before_ms: int
    missing: int


@dataclass
class StreamHistory:
    """The candles of one symbol read from ``market_data``, and what was left out."""

    symbol: str
    frame: pd.DataFrame
    """``timestamp,open,high,low,close,volume``, ascending, one row per open time."""
    topic: str = MARKET_DATA
    days: float | None = None
    messages: int = 0
    """Messages with the symbol's key read from the topic."""
    bad: Counter[str] = field(default_factory=Counter)
    """Messages that are not a valid candle, by :class:`tinhieu.candles.CandleError` code."""
    duplicates: int = 0
    """Second copies of an open time already held (same values: a replay or a retry)."""
    conflicting: int = 0
    """Second copies with other values: the first one is kept, as in the live window."""
    older: int = 0
    """Valid candles before the window of ``days``."""
    gaps: list[Gap] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def start_ms(self) -> int | None:
        return int(self.frame["timestamp"].iloc[0]) if self.rows else None

    @property
    def end_ms(self) -> int | None:
        return int(self.frame["timestamp"].iloc[-1]) if self.rows else None

    @property
    def missing(self) -> int:
        return sum(g.missing for g in self.gaps)

    def source(self) -> dict[str, Any]:
        """What the registry records about the data (run params, version tags, metadata)."""
        return {"kind": "kafka", "topic": self.topic, "start_ms": self.start_ms,
                "end_ms": self.end_ms, "candles": self.rows, "messages": self.messages,
                "days": self.days, "gaps": len(self.gaps), "missing_candles": self.missing,
                "dropped_bad": sum(self.bad.values()),
                "dropped_duplicates": self.duplicates + self.conflicting}

    def summary(self) -> str:
        """One line for people: rows read, time range, what was dropped, the gaps."""
        parts = [f"{self.rows} candles from {self.topic} ({iso(self.start_ms)} -> "
                 f"{iso(self.end_ms)} UTC; {self.messages} messages read)"]
        if self.bad:
            parts.append("dropped " + ", ".join(f"{n} {code}" for code, n in
                                                sorted(self.bad.items())))
        if self.duplicates or self.conflicting:
            parts.append(f"{self.duplicates} duplicates"
                         + (f" and {self.conflicting} conflicting copies (first kept)"
                            if self.conflicting else ""))
        if self.gaps:
            widest = max(self.gaps, key=lambda g: g.missing)
            parts.append(f"{len(self.gaps)} gaps, {self.missing} candles missing (widest "
                         f"{widest.missing} after {iso(widest.after_ms)})")
        else:
            parts.append("no gaps")
        return "; ".join(parts)


def candles_from_messages(
    messages: Iterable[tuple[bytes | str | None, bytes | str | None]],
    symbol: str,
    supported: Sequence[str],
    timeframe_ms: int,
    *,
    days: float | None = None,
    end_ms: int | None = None,
    topic: str = MARKET_DATA,
    max_bytes: int | None = None,
) -> StreamHistory:
    """The candle frame of ``symbol`` from ``(key, value)`` messages in offset order.

    Messages keyed by another symbol are skipped (a partition holds several symbols); the
    rest are decoded and validated by :func:`tinhieu.candles.candle_from_message`, and the
    invalid ones counted by error code, never raised. Of two candles with one open time the
    first is kept. With ``days``, only the candles of the last ``days`` before ``end_ms``
    (default: the newest candle read, so a replayed history is judged by its own clock) are
    kept: ``end_ms - days * 86400000 < timestamp <= end_ms``. Pure: the caller reads Kafka.
    """
    want = symbol.encode()
    bars: dict[int, tuple[float, ...]] = {}
    hist = StreamHistory(symbol, pd.DataFrame(columns=COLUMNS), topic=topic, days=days)
    for key, value in messages:
        raw_key = key.encode() if isinstance(key, str) else key
        if raw_key is not None and raw_key != want:
            continue
        hist.messages += 1
        try:
            candle = candle_from_message(key, value, supported, timeframe_ms,
                                         max_bytes=max_bytes)
        except CandleError as exc:
            hist.bad[exc.code] += 1
            continue
        bar = candle.bar
        values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        held = bars.get(bar.ts)
        if held is None:
            bars[bar.ts] = values
        elif held == values:
            hist.duplicates += 1
        else:
            hist.conflicting += 1
    ts = np.array(sorted(bars), dtype=np.int64)
    if days is not None and ts.size:
        last = int(ts[-1]) if end_ms is None else int(end_ms)
        keep = (ts > last - int(days * DAY_MS)) & (ts <= last)
        hist.older = int((ts < last - int(days * DAY_MS)).sum())
        ts = ts[keep]
    rows = np.array([bars[int(t)] for t in ts], dtype=np.float64).reshape(-1, 5)
    frame = pd.DataFrame(rows, columns=COLUMNS[1:])
    frame.insert(0, "timestamp", ts)
    hist.frame = frame
    if ts.size > 1:
        step = np.diff(ts)
        for i in np.flatnonzero(step > timeframe_ms):
            hist.gaps.append(Gap(int(ts[i]), int(ts[i + 1]),
                                 int(step[i] // timeframe_ms) - 1))
    return hist


@dataclass
class RetrainOutcome:
    """What one symbol's retrain did: ``status`` is ``challenger``, ``champion``,
    ``registered`` (gate not passed: no alias), ``refused`` (too few candles) or ``failed``."""

    symbol: str
    history: StreamHistory
    status: str
    reason: str
    version: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The per-symbol summary the command prints."""
        tag = "[LOI]" if self.status in ("refused", "failed") else "[MO HINH]"
        out = [f"[DU LIEU] {self.symbol}: {self.history.summary()}"]
        if self.version is None:
            out.append(f"{tag} {self.symbol}: {self.status}: {self.reason}")
        else:
            verdict = "gate passed" if self.status in ("challenger", "champion") \
                else "gate NOT passed"
            alias = self.status if self.status != "registered" else "no alias"
            out.append(f"{tag} {self.symbol}: {verdict}: {self.reason}")
            out.append(f"{tag} {self.symbol}: version {self.version} -> {alias}; champion "
                       f"{self.aliases.get('champion', '-')}, challenger "
                       f"{self.aliases.get('challenger', '-')} ({self.seconds:.0f} s)")
        return out


def retrain_symbol(
    history: StreamHistory,
    settings: Any,
    registry: Any,
    *,
    n_splits: int = 5,
    max_train_rows: int | None = None,
    config: Any = None,
    progress: Any = False,
    gate: bool = True,
) -> RetrainOutcome:
    """Train ``history`` through :func:`tinhieu.training.train_symbol` (gate kept) into
    ``registry``; refuse, with the number needed, when there are too few candles.
    ``gate=False`` (tests, as in :func:`tinhieu.training.train_quick`) treats the new version
    as having passed the promotion gate."""
    from tinhieu.features import WARMUP
    from tinhieu.labels import label_settings
    from tinhieu.training import ModelConfig, TrainingError, train_symbol

    model_config = config or ModelConfig()
    need = min_candles(label_settings(settings), n_splits, WARMUP,
                       model_config.calibration_share if model_config.calibrate else None)
    window = f"the last {history.days:g} days" if history.days is not None else "the topic"
    if history.rows < need["candles"]:
        return RetrainOutcome(
            history.symbol, history, "refused",
            f"only {history.rows} candles on {history.topic} in {window}; retraining needs at "
            f"least {need['candles']} ({need['warmup']} warm-up + {need['span']} label span + "
            f"{need['rows']} rows for {n_splits} folds): wait for more history, or raise "
            "--days (up to market_data_retention_days)")
    started = time.perf_counter()
    try:
        result = train_symbol(history.frame, history.symbol, settings, registry,
                              n_splits=n_splits, max_train_rows=max_train_rows,
                              config=model_config,
                              progress=progress, data_source=history.source(),
                              actor="retrain", gate=gate)
    except TrainingError as exc:
        return RetrainOutcome(history.symbol, history, "refused", str(exc))
    version = next(iter(result.versions.values()), None)
    aliases = dict(registry.aliases(history.symbol)) if hasattr(registry, "aliases") else {}
    if not result.promoted:
        status = "registered"
    elif not hasattr(registry, "aliases") or aliases.get("champion") == version:
        status = "champion"
    else:
        status = "challenger"
    return RetrainOutcome(history.symbol, history, status,
                          str(result.promotion.get("reason", "-")), version, aliases,
                          time.perf_counter() - started)
