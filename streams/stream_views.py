"""Live streams on the worker's own web server: ``GET /api/v1/ws`` (WebSocket) and
``GET /api/v1/stream`` (Server-Sent Events), docs/API.md "Streaming".

Plain aiohttp handlers over the hub of ``tinhieu.streaming`` (fan-out, bounded queue per
client, subscription rules). The middleware of ``streams/api.py`` guards both paths like
the rest of ``/api/v1/`` (the bearer token when ``web_token`` is set, GET only) and turns
any refusal before the stream starts into the API's JSON error.

Every worker pushes every symbol (a client may connect to any worker): the hub is fed by
one aiokafka consumer per worker, outside the consumer group, started with the first
client and stopped with the last or at shutdown; it never touches the candle agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
from typing import Any

from aiohttp import WSMsgType
from aiohttp import web as aioweb

from streams.app import app, settings
from tinhieu.kafka_io import bootstrap_servers
from tinhieu.streaming import (
    HEARTBEAT_S,
    MAX_SUBSCRIBE_BYTES,
    Client,
    Hub,
    Subscription,
    frame,
    kafka_feed,
    parse_stream_query,
    parse_subscribe_message,
)
from tinhieu.webapi import ApiError

API = "/api/v1"
log = logging.getLogger("tinhieu.streams")
# Kernel send buffer of a stream connection: small, so that a client that stops reading
# shows up in its queue within a few hundred messages instead of megabytes later.
SEND_BUFFER_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 2.0
WRITE_BUFFER_LIMIT = 64 * 1024  # a WebSocket writer waits above this (as aiohttp's does)

hub = Hub(kafka_feed(bootstrap_servers(settings.broker_url), settings.symbols),
          settings.stream_client_queue)


@app.on_before_shutdown.connect
async def _close_streams(app: Any, **kwargs: object) -> None:
    await hub.close()


async def _connect(subscription: Subscription) -> Client:
    try:
        return await hub.connect(subscription)
    except TimeoutError:
        raise ApiError(
            503,
            "unavailable",
            "the stream cannot read signals/orders/dead_letters from Kafka right now; retry "
            "in a few seconds",
            retry=True,
        ) from None


def _small_send_buffer(request: aioweb.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


@functools.lru_cache(maxsize=4096)  # one message, many clients: framed once (same str)
def _ws_text_frame(text: str) -> bytes:
    """One unmasked, uncompressed RFC 6455 text frame (server to client).

    The messages waiting for a client are framed here and written in ONE transport write:
    ``WebSocketResponse.send_str`` per message made a syscall per message per client, and
    50 clients then cost the worker's event loop several times the candle agent's own work
    (bench/streaming.py). aiohttp's own frames (pings, close) are whole writes too, so
    frames never interleave."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


def _abort(request: aioweb.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def _first_done(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def websocket(request: aioweb.Request) -> aioweb.StreamResponse:
    subscription = parse_stream_query(request.query.items(), settings.symbols)
    ws = aioweb.WebSocketResponse(
        heartbeat=HEARTBEAT_S,
        max_msg_size=MAX_SUBSCRIBE_BYTES,
        timeout=CLOSE_TIMEOUT_S,
        compress=False,  # deflate per message per client cost more CPU than the agent
    )
    if not ws.can_prepare(request).ok:
        raise ApiError(
            400,
            "websocket_required",
            f"{API}/ws is a WebSocket (send Upgrade: websocket); for plain HTTP use "
            f"{API}/stream (Server-Sent Events)",
        )
    client = await _connect(subscription)
    try:
        _small_send_buffer(request)
        await ws.prepare(request)
        await ws.send_str(frame("subscribed", subscription.as_json()))

        async def pump() -> None:
            while True:  # aiohttp sends the pings itself
                batch = [await client.next(), *client.waiting()]
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                transport.write(b"".join(map(_ws_text_frame, batch)))
                while transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                    if transport.is_closing():
                        return
                    await asyncio.sleep(0.05)  # a slow reader: its queue fills meanwhile

        async def read() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    client.subscription = parse_subscribe_message(msg.data, settings.symbols)
                except ApiError as exc:
                    await ws.send_str(frame("error", exc.body()))
                    continue
                await ws.send_str(frame("subscribed", client.subscription.as_json()))

        await _first_done(pump(), read(), client.dropped.wait())
        if client.reason:
            log.warning("WebSocket client %s dropped: %s", request.remote, client.reason)
            code = 1001 if "shutting down" in client.reason else 1008
            try:
                await asyncio.wait_for(
                    ws.close(code=code, message=client.reason.encode()[:123]), CLOSE_TIMEOUT_S
                )
            except (TimeoutError, ConnectionError):
                _abort(request)  # a stalled client cannot even take the close frame
        else:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(ws.close(), CLOSE_TIMEOUT_S)
    finally:
        await hub.disconnect(client)
    return ws


def _event(text: str) -> bytes:
    return f"data: {text}\n\n".encode()


async def server_sent_events(request: aioweb.Request) -> aioweb.StreamResponse:
    subscription = parse_stream_query(request.query.items(), settings.symbols)
    client = await _connect(subscription)
    try:
        _small_send_buffer(request)
        resp = aioweb.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a reverse proxy must not hold the events
            }
        )
        await resp.prepare(request)
        await resp.write(_event(frame("subscribed", subscription.as_json())))

        async def pump() -> None:
            while True:
                text = await client.next(HEARTBEAT_S)
                if text is None:
                    await resp.write(b": ping\n\n")
                else:  # what is waiting goes in one write
                    await resp.write(b"".join(_event(t) for t in [text, *client.waiting()]))

        await _first_done(pump(), client.dropped.wait())
        if client.reason:
            log.warning("SSE client %s dropped: %s", request.remote, client.reason)
            try:
                await asyncio.wait_for(
                    resp.write(_event(frame("dropped", {"reason": client.reason}))),
                    CLOSE_TIMEOUT_S,
                )
                await asyncio.wait_for(resp.write_eof(), CLOSE_TIMEOUT_S)
            except (TimeoutError, ConnectionError):
                _abort(request)
    finally:
        await hub.disconnect(client)
    return resp


app.web.web_app.router.add_get(API + "/ws", websocket, allow_head=False)
app.web.web_app.router.add_get(API + "/stream", server_sent_events, allow_head=False)
