"""The REST API /api/v1/ on a real worker (token set) fed by a replay of real candles:
every endpoint's shape, trades paging on an empty and a filled trade log, the token, and
malformed requests answered with typed 4xx JSON."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.procs import FAUST, ROOT, Worker, app_env, run_command, wait_for
from tinhieu.data import load_candles, parse_time
from tinhieu.tradelog import TRADE_COLUMNS, TradeLog

pytestmark = pytest.mark.integration
TOKEN = "it-api-token-5f3a"
WINDOW = 60
START, END = "2021-04-05T00:00", "2021-04-05T01:30"
SYMBOLS = "BTC,ETH,SOL"  # SOL gets no candles: the "not yet" answers
AUTH_LIMIT = 30


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("worker")
    # The tests before the last send 20 wrong tokens: the limit is reached in the last one.
    return app_env(
        kafka.url, data_dir, "it-api", window_size=WINDOW, web_token=TOKEN, symbols=SYMBOLS,
        web_auth_failures_per_minute=AUTH_LIMIT,
    )


@pytest.fixture(scope="module")
def worker(env, tmp_path_factory):
    w = Worker(env, tmp_path_factory.mktemp("logs") / "worker.log").start()
    try:
        w.wait_ready()  # the legacy /health needs no token: the bot keeps working
        yield w
    finally:
        w.stop()


def call(
    worker: Worker,
    path: str,
    token: str | None = TOKEN,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    answer: dict[str, str] | None = None,
) -> tuple[int, Any]:
    req = urllib.request.Request(worker.url + path, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers.get_content_type() == "application/json", path
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        if answer is not None:
            answer.update(err.headers)
        body = err.read()
        assert err.headers.get_content_type() == "application/json", (path, body[:300])
        return err.code, json.loads(body)


@pytest.fixture(scope="module")
def replayed(worker, env, data_1m):
    files = [str(data_1m / "BTCUSDT_1m.csv.gz"), str(data_1m / "ETHUSDT_1m.csv.gz")]
    out = run_command(env, "replay", *files, "--max", "--start", START, "--end", END)
    assert "replayed 180 candles of 2 symbol(s)" in out
    last = {}
    for sym, name in (("BTC-USDT", "BTCUSDT"), ("ETH-USDT", "ETHUSDT")):
        df = load_candles(data_1m / f"{name}_1m.csv.gz", parse_time(START), parse_time(END))
        last[sym] = int(df["timestamp"].iloc[-1])
        wait_for(
            lambda s=sym, t=last[sym]: call(worker, f"/api/v1/windows/{s}")[1].get("last") == t,
            60,
            f"{sym} window to reach {last[sym]}",
        )
    return last


def assert_error(status: int, body: Any, expected_status: int, error: str) -> None:
    assert status == expected_status, body
    assert body["error"] == error and isinstance(body["detail"], str) and body["detail"], body
    assert "Traceback" not in body["detail"]


ENDPOINTS = [
    "/api/v1/symbols",
    "/api/v1/windows/BTC-USDT",
    "/api/v1/signals/BTC-USDT",
    "/api/v1/positions",
    "/api/v1/positions/BTC-USDT",
    "/api/v1/trades",
    "/api/v1/equity",
    "/api/v1/models",
    "/api/v1/health",
    "/api/v1/nowhere",
]


def test_every_endpoint_needs_the_token(worker) -> None:
    for path in ENDPOINTS:
        for token in (None, "wrong", TOKEN + "x"):
            status, body = call(worker, path, token=token)
            assert_error(status, body, 401, "unauthorized")
            assert "TINHIEU_WEB_TOKEN" in body["detail"] and TOKEN not in json.dumps(body)
    status, _ = call(worker, "/api/v1/symbols", headers={})
    assert status == 200


def test_symbols(worker) -> None:
    status, body = call(worker, "/api/v1/symbols")
    assert status == 200
    assert [s["symbol"] for s in body["symbols"]] == ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    first = body["symbols"][0]
    assert first["path"] == "BTC-USDT" and 0 <= first["partition"] < 4
    assert first["local"] is True and first["owner"] == body["worker"]


def test_windows_signals_positions(worker, replayed) -> None:
    for sym, last in replayed.items():
        status, window = call(worker, f"/api/v1/windows/{sym}")
        assert status == 200 and window["size"] == WINDOW and window["last"] == last
        assert set(window["candles"][0]) == {"timestamp", "open", "high", "low", "close", "volume"}
        status, signal = call(worker, f"/api/v1/signals/{sym}")
        assert status == 200 and signal["action"] == "NEUTRAL"
        assert signal["reason"] == "no_model" and signal["symbol"] == sym.replace("-", "/")
        status, book = call(worker, f"/api/v1/positions/{sym}")
        assert status == 200 and book["symbol"] == sym.replace("-", "/")
        assert {"cash", "qty", "entry_price", "stop_loss", "take_profit"} <= set(book)
    status, body = call(worker, "/api/v1/windows/BTC%2FUSDT")
    assert status == 200 and body["symbol"] == "BTC/USDT"
    status, body = call(worker, "/api/v1/windows/BTC/USDT")
    assert status == 200 and body["symbol"] == "BTC/USDT"
    status, body = call(worker, "/api/v1/signals/eth")
    assert status == 200
    status, body = call(worker, "/api/v1/positions")
    assert status == 200 and body["errors"] == {}
    assert body["positions"]["BTC/USDT"]["cash"] > 0 and body["positions"]["SOL/USDT"] is None
    for what in ("windows", "signals", "positions"):
        status, body = call(worker, f"/api/v1/{what}/SOL-USDT")
        assert_error(status, body, 404, "not_found")


def test_models_health_equity(worker, replayed) -> None:
    status, body = call(worker, "/api/v1/models")
    assert status == 200 and body["loaded"] == {} and "feature_schema" in body
    status, body = call(worker, "/api/v1/health")
    assert status == 200 and body["status"] in ("ok", "stalled") and body["assigned"]
    status, body = call(worker, "/api/v1/equity?symbol=BTC&limit=1000")
    assert status == 200 and body["symbol"] == "BTC/USDT"
    assert body["total"] == len(body["equity"]) and body["next_offset"] is None
    for point in body["equity"]:
        assert set(point) == {"symbol", "time", "cash", "position_value", "equity"}


def _fill(i: int, symbol: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: 1.0 for c in TRADE_COLUMNS}
    row.update(
        id=f"it-api-{i}",
        symbol=symbol,
        side="BUY" if i % 2 == 0 else "SELL",
        status="filled",
        reason="signal",
        candle_time=parse_time("2021-04-05") + i * 60_000,
        fill_time=parse_time("2021-04-05") + i * 60_000,
        model_version="it",
    )
    return row


def test_trades_paging_empty_then_filled(worker, env) -> None:
    status, body = call(worker, "/api/v1/trades")
    assert status == 200 and body["trades"] == [] and body["total"] == 0
    assert body["next_offset"] is None and body["limit"] == 100 and body["offset"] == 0
    # Fills written by another writer of the same WAL file (as a second worker would).
    with TradeLog(f"{env['TINHIEU_DATA_DIR']}/trades.db") as log:
        log.record_fills(_fill(i, "BTC/USDT" if i % 3 else "ETH/USDT") for i in range(25))
    seen = []
    offset: int | None = 0
    while offset is not None:
        status, body = call(worker, f"/api/v1/trades?limit=10&offset={offset}")
        assert status == 200 and body["total"] == 25 and len(body["trades"]) <= 10
        seen += [t["id"] for t in body["trades"]]
        offset = body["next_offset"]
    assert seen == [f"it-api-{i}" for i in range(25)]
    assert set(body["trades"][0]) >= {"id", "symbol", "side", "price", "fill_time", "pnl"}
    status, body = call(worker, "/api/v1/trades?symbol=eth-usdt&limit=3")
    assert status == 200 and body["total"] == 9 and len(body["trades"]) == 3
    assert {t["symbol"] for t in body["trades"]} == {"ETH/USDT"} and body["next_offset"] == 3
    since, until = parse_time("2021-04-05") + 5 * 60_000, "2021-04-05T00:09Z"
    status, body = call(worker, f"/api/v1/trades?since={since}&until={until}")
    assert status == 200 and [t["id"] for t in body["trades"]] == [
        f"it-api-{i}" for i in range(5, 10)
    ]
    status, body = call(worker, "/api/v1/trades?offset=1000")
    assert status == 200 and body["trades"] == [] and body["total"] == 25


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/api/v1/trades?limit=abc", 400, "invalid_query"),
        ("/api/v1/trades?limit=1001", 400, "invalid_query"),
        ("/api/v1/trades?limit=0", 400, "invalid_query"),
        ("/api/v1/trades?offset=-1", 400, "invalid_query"),
        ("/api/v1/trades?since=yesterday", 400, "invalid_query"),
        ("/api/v1/equity?until=2021-02-30", 400, "invalid_query"),
        ("/api/v1/trades?since=2021-05-02&until=2021-05-01", 400, "invalid_query"),
        ("/api/v1/trades?lmit=5", 400, "invalid_query"),
        ("/api/v1/trades?limit=5&limit=6", 400, "invalid_query"),
        ("/api/v1/trades?symbol=DOGE", 404, "unknown_symbol"),
        ("/api/v1/trades?symbol=%3Cscript%3E", 400, "invalid_symbol"),
        ("/api/v1/windows/DOGE", 404, "unknown_symbol"),
        ("/api/v1/windows/" + "A" * 300, 400, "invalid_symbol"),
        ("/api/v1/signals/BTC%20USDT", 400, "invalid_symbol"),
        ("/api/v1/positions/%00", 400, "invalid_symbol"),
        ("/api/v1/windows/%FF%FE", 400, "invalid_symbol"),
        ("/api/v1/windows/..%2F..%2Fetc", 400, "invalid_symbol"),
        ("/api/v1/trades?limit=%FF", 400, "invalid_query"),
        ("/api/v1/trades?since=1e10", 400, "invalid_query"),
        ("/api/v1/trades?until=2021-05-01T25:00", 400, "invalid_query"),
        ("/api/v1/trades?offset=" + "9" * 5000, 400, "invalid_query"),
        ("/api/v1/windows/a/b/c", 404, "not_found"),
        ("/api/v1/nowhere", 404, "not_found"),
        ("/api/v1", 404, "not_found"),
    ],
)
def test_malformed_requests_get_typed_4xx(worker, path, status, error) -> None:
    got, body = call(worker, path)
    assert_error(got, body, status, error)
    if error in ("unknown_symbol", "invalid_symbol"):
        assert "BTC/USDT" in body["supported"]


def test_methods_and_bodies(worker) -> None:
    status, body = call(worker, "/api/v1/trades", method="POST", data=b"{}")
    assert_error(status, body, 405, "method_not_allowed")
    status, body = call(worker, "/api/v1/symbols", method="DELETE")
    assert_error(status, body, 405, "method_not_allowed")
    status, body = call(worker, "/api/v1/trades", data=b"x" * 200_000, method="GET")
    assert_error(status, body, 413, "payload_too_large")
    status, body = call(worker, "/api/v1/symbols")  # the worker is still fine
    assert status == 200


def test_a_second_worker_forwards_with_the_token(worker, env, replayed, tmp_path) -> None:
    """Last of the module (it rebalances): each worker answers for every symbol, a symbol
    owned by the other worker is forwarded with the caller's token, and /positions asks
    the other worker for its books."""
    other = Worker(dict(env, TINHIEU_DATA_DIR=str(tmp_path / "w2")), tmp_path / "w2.log")
    other.start()
    try:
        other.wait_ready(timeout=90)
        both = (worker, other)

        def split() -> Any:
            tables = [call(w, "/api/v1/symbols")[1] for w in both]
            owners = [{s["symbol"]: s["owner"] for s in t["symbols"]} for t in tables]
            if owners[0] != owners[1] or set(owners[0].values()) != {w.url for w in both}:
                return None
            return owners[0]

        owners = wait_for(split, 90, "the symbols to be split over the two workers")
        for w in both:
            for sym, last in replayed.items():
                wait_for(
                    lambda w=w, s=sym, t=last: call(w, f"/api/v1/windows/{s}")[1].get("last") == t,
                    60,
                    f"{sym} from {w.url} (owner {owners[sym.replace('-', '/')]})",
                )
                status, body = call(w, f"/api/v1/signals/{sym}")
                assert status == 200 and body["candle_time"] == last
            status, body = call(w, "/api/v1/positions/SOL-USDT")
            assert_error(status, body, 404, "not_found")
            status, body = call(w, "/api/v1/positions")
            assert status == 200 and body["errors"] == {}, body
            assert body["positions"]["BTC/USDT"] and body["positions"]["ETH/USDT"]
            status, body = call(w, "/api/v1/windows/BTC-USDT", token=None)
            assert_error(status, body, 401, "unauthorized")
            # The table views need the token too, and /positions passes it on to the
            # other worker; /health stays open for load balancers.
            for view in ("/windows/BTC-USDT", "/signals/ETH-USDT", "/positions"):
                status, body = call(w, view, token=None)
                assert_error(status, body, 401, "unauthorized")
            status, body = call(w, "/positions")
            assert status == 200, body
            books = [body["positions"][s] for s in ("BTC/USDT", "ETH/USDT")]
            assert all(b and "error" not in b and "cash" in b for b in books), body
            assert call(w, "/health", token=None)[0] == 200
    finally:
        other.stop()


def test_a_non_local_bind_without_a_token_is_refused(env) -> None:
    bad = {k: v for k, v in env.items() if k != "TINHIEU_WEB_TOKEN"}
    bad["TINHIEU_WEB_HOST"] = "0.0.0.0"
    proc = subprocess.run(
        [FAUST, "-A", "streams.app", "worker"],
        env=bad,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "web_token (TINHIEU_WEB_TOKEN)" in proc.stderr and "TINHIEU_WEB_HOST" in proc.stderr


def test_wrong_tokens_beyond_the_limit_wait(worker) -> None:
    """Last of the module (it locks 127.0.0.1 out for a minute): after the limit of wrong
    tokens, every request that needs the token gets 429 with Retry-After, the right token
    included; requests without any token are not guesses and did not count; /health stays
    open."""
    statuses = []
    for _ in range(AUTH_LIMIT + 1):
        status, body = call(worker, "/api/v1/symbols", token="guess")
        statuses.append(status)
        if status == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {401}, statuses
    headers: dict[str, str] = {}
    status, body = call(worker, "/api/v1/symbols", answer=headers)
    assert_error(status, body, 429, "too_many_failed_attempts")
    assert 1 <= int(headers["Retry-After"]) <= 60 and body["retry_after_s"] == int(
        headers["Retry-After"])
    assert "web_auth_failures_per_minute" in body["detail"] and TOKEN not in json.dumps(body)
    assert call(worker, "/windows/BTC-USDT")[0] == 429  # the table views alike
    assert call(worker, "/health", token=None)[0] == 200
