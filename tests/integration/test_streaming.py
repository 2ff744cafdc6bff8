"""The live streams /api/v1/ws and /api/v1/stream on a real worker (token set) fed by a
replay of real candles: a WebSocket client (subscribed by message) and an SSE client
(subscribed by query) get every BTC signal in candle order and nothing of ETH; a client
that stops reading (SSE and WebSocket) is dropped while they keep receiving; the token and
the query rules apply before any stream starts."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from typing import Any

import aiohttp
import pytest

from tests.integration.procs import Worker, app_env, run_command
from tinhieu.data import load_candles, parse_time

pytestmark = pytest.mark.integration
TOKEN = "it-stream-token-9c1d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START, END = "2021-04-05T00:00", "2021-04-05T15:00"  # 900 candles per symbol
QUEUE = 64


@pytest.fixture(scope="module")
def env(kafka, tmp_path_factory):
    return app_env(
        kafka.url,
        tmp_path_factory.mktemp("worker"),
        "it-stream",
        web_token=TOKEN,
        symbols="BTC,ETH",
        stream_client_queue=QUEUE,
    )


async def test_token_and_query_are_checked_before_the_stream(worker) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(worker.url + "/api/v1/ws")
        assert info.value.status == 401
        async with http.get(worker.url + "/api/v1/stream") as resp:
            assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
        for query, status, error in (
            ("symbols=doge", 404, "unknown_symbol"),
            ("types=candle", 400, "invalid_query"),
            ("symbol=btc", 400, "invalid_query"),
        ):
            async with http.get(f"{worker.url}/api/v1/stream?{query}", headers=AUTH) as resp:
                assert resp.status == status and (await resp.json())["error"] == error
        async with http.get(worker.url + "/api/v1/ws", headers=AUTH) as resp:  # no Upgrade
            assert resp.status == 400 and (await resp.json())["error"] == "websocket_required"


def stalled_client(worker: Worker, path: str) -> socket.socket:
    """An SSE (``/api/v1/stream``) or WebSocket (``/api/v1/ws``) client that reads its first
    message and then never reads again (tiny receive buffer: the worker's side fills up
    quickly)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", worker.web_port))
    upgrade = ""
    if path.endswith("/ws"):
        key = base64.b64encode(os.urandom(16)).decode()
        upgrade = (f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}"
                   "\r\nSec-WebSocket-Version: 13\r\n")
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"{upgrade}\r\n".encode()
    )
    sock.settimeout(10)
    seen = b""
    while b'"subscribed"' not in seen:
        chunk = sock.recv(4096)
        assert chunk, f"{path} closed before it started: {seen[:300]!r}"
        seen += chunk
    return sock


def stream_end(sock: socket.socket, timeout: float = 20.0) -> tuple[bool, int]:
    """Read what is left; (ended, bytes). Ended = EOF, a reset, or the drop's reason (the
    SSE ``dropped`` event or the WebSocket close frame)."""
    sock.settimeout(2)
    deadline = time.monotonic() + timeout
    total, tail = 0, b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionError:
            return True, total
        if not chunk:
            return True, total
        total += len(chunk)
        tail = (tail + chunk)[-1024:]
        if b"too slow" in tail:
            return True, total
    return False, total


async def ws_signals(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        msg = await ws.receive(timeout=30)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(json.loads(msg.data))
    return out


async def sse_signals(resp: aiohttp.ClientResponse, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        line = await asyncio.wait_for(resp.content.readline(), 30)
        assert line, "SSE stream ended early"
        if line.startswith(b"data: "):
            out.append(json.loads(line[6:]))
    return out


async def test_subscribed_clients_get_their_symbol_in_order_and_a_stalled_one_is_dropped(
    worker, env, data_1m
) -> None:
    btc = load_candles(data_1m / "BTCUSDT_1m.csv.gz", parse_time(START), parse_time(END))
    expected = [int(t) for t in btc["timestamp"]]
    async with aiohttp.ClientSession(headers=AUTH) as http:
        ws = await http.ws_connect(worker.url + "/api/v1/ws")
        first = json.loads((await ws.receive(timeout=20)).data)
        assert first == {"type": "subscribed",
                         "data": {"symbols": None,
                                  "types": ["signal", "order", "dead_letter", "alert"]}}
        await ws.send_str('{"subscribe": {"symbols": ["nope"]}}')
        error = json.loads((await ws.receive(timeout=10)).data)
        assert error["type"] == "error" and error["data"]["error"] == "invalid_message"
        await ws.send_str('{"subscribe": {"symbols": ["btc"], "types": ["signal"]}}')
        ack = json.loads((await ws.receive(timeout=10)).data)
        assert ack == {"type": "subscribed",
                       "data": {"symbols": ["BTC/USDT"], "types": ["signal"]}}

        sse = await http.get(worker.url + "/api/v1/stream?symbols=BTC-USDT&types=signal",
                             timeout=aiohttp.ClientTimeout(total=None))
        assert sse.status == 200
        assert sse.headers["Content-Type"].startswith("text/event-stream")
        assert (await sse_signals(sse, 1))[0]["type"] == "subscribed"
        stalled = [await asyncio.to_thread(stalled_client, worker, "/api/v1/stream"),
                   await asyncio.to_thread(stalled_client, worker, "/api/v1/ws")]
        try:
            began = time.monotonic()
            files = [str(data_1m / "BTCUSDT_1m.csv.gz"), str(data_1m / "ETHUSDT_1m.csv.gz")]
            replay = asyncio.create_task(asyncio.to_thread(
                run_command, env, "replay", *files, "--max", "--start", START, "--end", END))
            by_ws, by_sse = await asyncio.gather(
                ws_signals(ws, len(expected)), sse_signals(sse, len(expected)))
            assert "replayed 1800 candles of 2 symbol(s)" in await replay
            for got in (by_ws, by_sse):
                assert {m["type"] for m in got} == {"signal"}
                assert {m["data"]["symbol"] for m in got} == {"BTC/USDT"}
                assert [m["data"]["candle_time"] for m in got] == expected
            print(f"900 signals to each client in {time.monotonic() - began:.1f} s")
            for kind, sock in zip(("SSE", "WebSocket"), stalled, strict=True):
                ended, rest = await asyncio.to_thread(stream_end, sock)
                assert ended, f"the stalled {kind} client was not dropped"
                assert f"{kind} client 127.0.0.1 dropped: too slow" in worker.tail(200_000)
                print(f"stalled {kind} client dropped after {rest} more bytes")
        finally:
            for sock in stalled:
                sock.close()
        # The reading clients are still subscribed: nothing extra was queued for them.
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=1.0)
        await ws.close()
        sse.close()


async def test_shutdown_closes_the_streams(worker) -> None:
    """Last test of the module: stopping the worker ends both streams promptly (1001)."""
    async with aiohttp.ClientSession(headers=AUTH) as http:
        ws = await http.ws_connect(worker.url + "/api/v1/ws")
        assert json.loads((await ws.receive(timeout=20)).data)["type"] == "subscribed"
        sse = await http.get(worker.url + "/api/v1/stream",
                             timeout=aiohttp.ClientTimeout(total=None))
        assert (await sse_signals(sse, 1))[0]["type"] == "subscribed"
        began = time.monotonic()
        await asyncio.to_thread(worker.stop)
        assert worker.proc.returncode is not None
        msg = await ws.receive(timeout=10)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001, msg
        assert "shutting down" in msg.extra
        rest = await asyncio.wait_for(sse.content.read(), 10)
        assert b"shutting down" in rest
        print(f"worker stopped with 2 streams open in {time.monotonic() - began:.1f} s")
        sse.close()
