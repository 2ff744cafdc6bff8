"""Commands of the one entry point: ``faust -A streams.app <command>``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from faust.cli import argument, option
from tqdm import tqdm

from streams.app import app, settings
from streams.topics import DEAD_LETTERS, MARKET_DATA, ORDERS, SIGNALS
from tinhieu.candles import bar_to_dict
from tinhieu.data import DataFileError, parse_time
from tinhieu.kafka_io import ensure_topics, make_producer
from tinhieu.replay import load_replay, merge_in_time
from tinhieu.retrain import market_data_configs
from tinhieu.symbols import UnknownSymbolError


async def ensure_all_topics() -> None:
    await ensure_topics(
        settings.broker_url,
        [MARKET_DATA, SIGNALS, ORDERS, DEAD_LETTERS],
        settings.partitions,
        settings.replicas,
        {MARKET_DATA: market_data_configs(settings.market_data_retention_days)},
    )


@app.command(
    argument("files", nargs=-1, required=True),
    option(
        "--speed",
        type=float,
        default=60.0,
        show_default=True,
        help="Market time per wall time: 60 replays one minute of candles per second.",
    ),
    option("--max", "max_speed", is_flag=True, default=False, help="As fast as possible."),
    option("--start", default=None, help="First candle (UTC date/time or ms)."),
    option("--end", default=None, help="End, exclusive (UTC date/time or ms)."),
    option("--limit", type=int, default=None, help="At most N candles per file."),
)
async def replay(
    self: object,
    files: tuple[str, ...],
    speed: float,
    max_speed: bool,
    start: str | None,
    end: str | None,
    limit: int | None,
) -> None:
    """Publish candles from CSV files (format of shared/data) to market_data, in time order."""
    try:
        per_symbol = load_replay(files, settings.symbols, parse_time(start), parse_time(end), limit)
    except (DataFileError, UnknownSymbolError) as exc:
        raise SystemExit(f"[LOI] {exc}") from None
    total = sum(len(v) for v in per_symbol.values())
    await ensure_all_topics()
    producer = make_producer(settings.broker_url)
    await producer.start()
    sent = 0
    began = time.monotonic()
    first_ts: int | None = None
    pending = []
    try:
        with tqdm(total=total, unit="nen", desc="replay", mininterval=0.5) as bar:
            for symbol, candle in merge_in_time(per_symbol):
                if not max_speed and speed > 0:
                    first_ts = candle.ts if first_ts is None else first_ts
                    due = (candle.ts - first_ts) / 1000.0 / speed
                    lag = due - (time.monotonic() - began)
                    if lag > 0:
                        await asyncio.sleep(lag)
                value = json.dumps(
                    bar_to_dict(symbol, candle, settings.timeframe, "replay")
                ).encode()
                pending.append(await producer.send(MARKET_DATA, value, key=symbol.encode()))
                sent += 1
                if len(pending) >= 2000:
                    await asyncio.gather(*pending)
                    bar.update(len(pending))
                    pending.clear()
            if pending:
                await asyncio.gather(*pending)
                bar.update(len(pending))
    finally:
        await producer.stop()
    elapsed = time.monotonic() - began
    print(f"[DU LIEU] replayed {sent} candles of {len(per_symbol)} symbol(s) in {elapsed:.1f} s")


def _in_thread(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run blocking CLI work (training, backtests) off the command's event loop."""
    return asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kwargs))


@app.command(
    option("--symbols", default=None, help="Comma-separated; default: all configured."),
    option(
        "--data-dir",
        default=None,
        type=Path,
        help="History files (BTCUSDT_1m.csv.gz ...); without it, the exchange (online).",
    ),
    option("--start", default=None, help="UTC date/time or ms."),
    option("--end", default=None, help="UTC date/time or ms, exclusive."),
    option("--report", default=None, type=Path, help="Report file (markdown)."),
    option("--splits", default=5, type=int, show_default=True, help="Walk-forward folds."),
    option("--no-promote", is_flag=True, default=False, help="Keep production pointers."),
    option("--max-train-rows", default=None, type=int, help="Cap rows per fold (speed)."),
)
async def train(
    self: object,
    symbols: str | None,
    data_dir: Path | None,
    start: str | None,
    end: str | None,
    report: Path | None,
    splits: int,
    no_promote: bool,
    max_train_rows: int | None,
) -> None:
    """Walk-forward training of RF + SVM + LR per symbol into the model registry.

    New models are promoted only when their walk-forward after-fee result beats cash,
    buy-and-hold and the MA crossover (the promotion gate); otherwise they are registered
    unpromoted and the reason is printed (and written in the report).
    """
    from tinhieu.training import run_train_command

    report = report or settings.data_dir / "reports" / "train.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in (symbols or "").split(",") if s.strip()]
    try:
        results = await _in_thread(
            run_train_command,
            settings,
            wanted,
            data_dir,
            start,
            end,
            report,
            n_splits=splits,
            promote=not no_promote,
            max_train_rows=max_train_rows,
        )
    except (DataFileError, UnknownSymbolError, ValueError) as exc:
        raise SystemExit(f"[LOI] {exc}") from None
    from tinhieu.registry import open_registry

    registry = open_registry(settings)
    for sym, res in results.items():
        verdict = "promoted" if res.promoted else "NOT promoted (trades nothing new)"
        print(f"[MO HINH] {sym}: {verdict}: {res.promotion.get('reason', '-')}")
        if hasattr(registry, "aliases"):  # MLflow: a new version waits as challenger
            aliases = await _in_thread(registry.aliases, sym)
            print(f"[MO HINH] {sym}: version {next(iter(res.versions.values()), '-')}; "
                  f"champion {aliases.get('champion', '-')}, challenger "
                  f"{aliases.get('challenger', '-')}")
    print(f"[MO HINH] report: {report}")


@app.command(
    argument("action", type=str),
    argument("args", nargs=-1),
    option("--alias", default="champion", show_default=True,
           help="promote: champion (served by the workers) or challenger."),
    option("--reason", default="", help="promote: why (kept in the history)."),
)
async def models(
    self: object, action: str, args: tuple[str, ...], alias: str, reason: str
) -> None:
    """Model registry: list [SYMBOL] | show SYMBOL VERSION [ALGO] | history SYMBOL |
    promote SYMBOL VERSION [--alias challenger] [--reason TEXT] | migrate"""
    from tinhieu.registry import ModelRegistry, ModelRegistryError, open_registry
    from tinhieu.symbols import normalize

    registry = open_registry(settings)
    usage = (
        "usage: models list [SYMBOL] | show SYMBOL VERSION [ALGO] | history SYMBOL | "
        "promote SYMBOL VERSION [--alias challenger] [--reason TEXT] | migrate"
    )
    mlflow = not isinstance(registry, ModelRegistry)
    try:
        if action == "list":
            symbol = normalize(args[0], settings.symbols) if args else None
            rows = await _in_thread(registry.list, symbol)
            if not rows:
                print(f"no models in {getattr(registry, 'root', settings.models_path)}")
            for line in _model_rows(rows):
                print(line)
        elif action == "show" and len(args) in (2, 3):
            symbol = normalize(args[0], settings.symbols)
            if len(args) == 3 and not mlflow:  # the file registry's SYMBOL ALGO VERSION
                meta = registry.show(symbol, args[1], args[2])
            elif len(args) == 3:
                algo, version = (args[2], args[1]) if args[1][:1] in "vV0123456789" else args[1:]
                meta = await _in_thread(registry.show, symbol, algo, version)
            else:
                rows = await _in_thread(registry.list, symbol)
                meta = [r for r in rows if str(r.get("version")) in (args[1], f"v{args[1]}")]
                if not meta:
                    raise ModelRegistryError(f"no version {args[1]} of {symbol}; see models list")
            print(json.dumps(meta, indent=2, default=str))
        elif action == "history" and len(args) == 1 and mlflow:
            symbol = normalize(args[0], settings.symbols)
            events = await _in_thread(registry.history, symbol)
            if not events:
                print(f"no alias changes for {symbol} in {registry.root}")
            for e in events:
                verb = "->" if e.get("action") == "set" else "removed from"
                print(f"{e['at']}  {e['alias']:<10} {verb} {e['version']:<5} "
                      f"(was {e.get('previous') or '-'})  by {e.get('actor')} "
                      f"({e.get('user')}): {e.get('reason') or '-'}")
        elif action == "promote" and len(args) == 3 and not mlflow:
            symbol = normalize(args[0], settings.symbols)
            registry.promote(symbol, args[1], args[2])
            print(f"[MO HINH] {symbol} {args[1]} -> production {args[2]}")
        elif action == "promote" and len(args) == 2 and mlflow:
            symbol = normalize(args[0], settings.symbols)
            event = await _in_thread(registry.promote, symbol, args[1], alias=alias,
                                     actor="manual", reason=reason)
            print(f"[MO HINH] {symbol} {event['alias']} -> {event['version']} "
                  f"(was {event.get('previous') or '-'}); workers follow within "
                  f"{settings.model_check_interval_s:g} s")
        elif action == "migrate" and mlflow:
            files = ModelRegistry(settings.models_path)
            report = await _in_thread(registry.migrate, files)
            if not report:
                print(f"no file-registry models in {settings.models_path}")
            for r in report:
                star = "  champion" if r["champion"] else ""
                print(f"[MO HINH] {r['symbol']} {r['version']} <- {r['members']}: "
                      f"{r['status']}{star}")
        else:
            raise SystemExit(usage + ("" if mlflow else
                             " (file registry: promote SYMBOL ALGO VERSION, show SYMBOL ALGO "
                             "VERSION; history and migrate need TINHIEU_MODEL_REGISTRY=mlflow)")
                             )
    except (ModelRegistryError, UnknownSymbolError) as exc:
        raise SystemExit(f"[LOI] {exc}") from None


def _model_rows(rows: list[dict]) -> list[str]:
    """``models list``: one line per MLflow version (members together), one per file model."""
    out, seen = [], set()
    for r in rows:
        if r.get("registry") == "mlflow":
            key = (r.get("symbol"), r.get("version"))
            if key in seen:
                continue
            seen.add(key)
            algos = ",".join(x["algorithm"] for x in rows if x.get("registry") == "mlflow"
                             and (x.get("symbol"), x.get("version")) == key)
            aliases = ",".join(r.get("aliases") or []) or "-"
            promo = r.get("promotion") or {}
            out.append(f"{'*' if r.get('production') else ' '} {r.get('symbol'):<10} "
                       f"{r.get('version'):<5} {aliases:<21} {algos:<12} trained "
                       f"{str(r.get('created_at', ''))[:19]}  gate: "
                       f"{'passed' if promo.get('promoted') else 'not passed'}")
        else:
            metrics = r.get("metrics", {}).get("overall", r.get("metrics", {}))
            bacc = metrics.get("balanced_accuracy") if isinstance(metrics, dict) else None
            out.append(
                f"{'*' if r.get('production') else ' '} {r.get('symbol'):<10} "
                f"{r.get('algorithm'):<4} {r.get('version')}  trained {r.get('created_at', '')}"
                + (f"  bal.acc {bacc:.3f}" if isinstance(bacc, float) else "")
                + ("  [file registry]" if r.get("registry") == "file" else "")
            )
    return out


@app.command(
    option("--symbols", default=None, help="Comma-separated; default: all configured."),
    option("--data-dir", required=True, type=Path, help="History files folder."),
    option("--start", default=None, help="UTC date/time or ms."),
    option("--end", default=None, help="UTC date/time or ms, exclusive."),
    option("--out", default=None, type=Path, help="Report folder."),
    option(
        "--allow-overlap",
        is_flag=True,
        default=False,
        help="Allow models trained on data inside the range (biased!).",
    ),
    option(
        "--engine",
        default="fast",
        show_default=True,
        help="fast (the risk step) or backtrader (also Backtrader's BackBroker and analyzers "
        "on the same candles and signals, side by side; slower).",
    ),
)
async def backtest(
    self: object,
    symbols: str | None,
    data_dir: Path,
    start: str | None,
    end: str | None,
    out: Path | None,
    allow_overlap: bool,
    engine: str,
) -> None:
    """Offline backtest: the same features, ensemble and risk rules as the live stream.

    The features warm up on the candles before --start in the files when they have them.
    """
    from tinhieu.backtest import BacktestError, run_backtest_command
    from tinhieu.backtest.report import format_engine_comparison

    out = out or settings.data_dir / "reports" / "backtest"
    wanted = [s for s in (symbols or "").split(",") if s.strip()] or None
    try:
        result = await _in_thread(
            run_backtest_command,
            settings,
            wanted,
            data_dir,
            start,
            end,
            out,
            allow_overlap,
            engine=engine,
        )
    except (BacktestError, DataFileError, UnknownSymbolError) as exc:
        raise SystemExit(f"[LOI] {exc}") from None
    if result.engine == "backtrader":
        print(format_engine_comparison(result))
    print(f"[DU LIEU] backtest report: {out / 'report.md'}")


@app.command(
    option("--symbol", default=None, help="Only this symbol."),
    option("--db", default=None, type=Path, help="Trade log; default the worker's."),
)
async def trades(self: object, symbol: str | None, db: Path | None) -> None:
    """Print the SQLite trade log (trades, positions)."""
    from tinhieu.symbols import normalize
    from tinhieu.tradelog import TradeLog, format_trades

    path = db or settings.trade_db_path
    if not path.exists():
        raise SystemExit(f"[LOI] no trade log at {path} (TINHIEU_TRADE_DB or --db)")
    log = TradeLog(path)
    try:
        sym = normalize(symbol, settings.symbols) if symbol else None
        print(format_trades(log.trades(sym)))
        for pos in log.positions():
            print(pos)
    finally:
        log.close()


@app.command()
async def bot(self: object) -> None:
    """Run the Discord bot (Vietnamese commands) and post every order to the channel."""
    from tinhieu.bot import serve_bot
    from tinhieu.bot.token import BotTokenError

    try:
        await serve_bot(settings)
    except BotTokenError as exc:
        raise SystemExit(str(exc)) from None
