"""The REST API under ``/api/v1/`` on the worker's own Faust web server (docs/API.md,
docs/openapi.yaml).

Per-symbol state comes from the one record per symbol in ``symbol_to_window``, asked from the
worker that owns the key through the same router as the views (``streams.views.routed``);
trades and equity from the SQLite trade log on its own thread (``runtime.trade_log``), never
on the event loop. Query rules, the token check and the error body are plain functions in
``tinhieu.webapi``.

One aiohttp middleware guards every ``/api/v1/`` path: body size, method, the bearer token
(when ``web_token`` is set; an address that sent ``web_auth_failures_per_minute`` wrong tokens
gets 429 with ``Retry-After`` until its minute is over), and it turns any refusal, an
unknown path or an unexpected exception into ``{"error": ..., "detail": ...}`` JSON (never a
traceback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web as aioweb
from faust.web import Request, Response, View

from streams.app import app, auth_failures, runtime, settings
from streams.views import HealthView, key_partition, owner_url, routed
from tables.windows import symbol_to_window
from tinhieu.candles import window_json
from tinhieu.symbols import url_form
from tinhieu.webapi import (
    MAX_BODY_BYTES,
    SESSION_COOKIE,
    ApiError,
    page_body,
    parse_page_query,
    parse_symbol,
    request_authorized,
    too_many_failures,
)

API = "/api/v1"
log = logging.getLogger("tinhieu.api")
_TOKEN = settings.web_token.get_secret_value() if settings.web_token is not None else None
GUARDED_VIEWS = ("/windows", "/signals", "/positions")
UNAUTHORIZED = ("this worker requires 'Authorization: Bearer <token>' (setting web_token, "
                "TINHIEU_WEB_TOKEN)")


def _error_json(exc: ApiError) -> aioweb.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="tinhieu"'} if exc.status == 401 else None
    if exc.status == 405:
        headers = {"Allow": "GET"}
    if exc.status == 429:
        headers = {"Retry-After": str(exc.extra["retry_after_s"])}
    return aioweb.json_response(exc.body(), status=exc.status, headers=headers)


def _authorize(request: aioweb.Request) -> None:
    """The bearer header, or the dashboard's session cookie (streams/dashboard.py); an
    address that sent too many wrong ones (``AuthFailures``) waits (429) before either is
    looked at."""
    if _TOKEN is None:
        return
    wait = auth_failures.retry_after(request.remote)
    if wait is not None:
        raise too_many_failures(wait)
    header, cookie = request.headers.get("Authorization"), request.cookies.get(SESSION_COOKIE)
    if not request_authorized(header, cookie, _TOKEN):
        if header or cookie:  # a wrong credential counts; none at all is no guess
            auth_failures.failed(request.remote)
        raise ApiError(401, "unauthorized", UNAUTHORIZED)


def _check(request: aioweb.Request) -> None:
    """Refuse before the handler runs: oversized or unsized bodies, methods, the token."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(
            413,
            "payload_too_large",
            f"request body of {length} bytes: the API takes no body (limit {MAX_BODY_BYTES})",
        )
    if length is None and request.body_exists:
        raise ApiError(411, "length_required", "a request body needs a Content-Length")
    if request.method != "GET":
        raise ApiError(
            405, "method_not_allowed", f"{request.method} is not allowed: the API is GET only"
        )
    _authorize(request)


@aioweb.middleware
async def api_guard(
    request: aioweb.Request, handler: Callable[[aioweb.Request], Awaitable[Any]]
) -> Any:
    if not (request.path == API or request.path.startswith(API + "/")):
        # The table views of streams/views.py answer the same data as the API: with a
        # token set they need it too. /health and /metrics stay open for load balancers
        # and Prometheus (they show no book).
        if request.path.startswith(GUARDED_VIEWS):
            try:
                _authorize(request)
            except ApiError as exc:
                return _error_json(exc)
        return await handler(request)
    try:
        _check(request)
        return await handler(request)
    except ApiError as exc:
        return _error_json(exc)
    except aioweb.HTTPException as exc:  # no such route, or aiohttp refused the request
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        detail = f"{request.path[:200]}: {exc.reason}"
        if exc.status == 404:
            detail += f"; the endpoints are listed in docs/API.md ({API}/symbols, ...)"
        return _error_json(ApiError(exc.status, code, detail))
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - logged here, never a traceback to the client
        log.exception("%s %s failed", request.method, request.path[:200])
        return _error_json(
            ApiError(
                500,
                "internal_error",
                f"{type(exc).__name__} while answering {request.path[:200]}; "
                "the worker's log has the details",
            )
        )


app.web.web_app.middlewares.append(api_guard)


def _json_error(view: View, exc: ApiError) -> Response:
    return view.json(exc.body(), status=exc.status)


async def _for_symbol(
    view: View, request: Request, raw: str, local: Callable[[str], Awaitable[Response]]
) -> Response:
    """Validate the symbol, then answer here or at the owner (``streams.views.routed``)."""
    try:
        symbol = parse_symbol(raw, settings.symbols)
    except ApiError as exc:
        return _json_error(view, exc)
    response = await routed(view, request, symbol_to_window.name, symbol, local)
    if response.status == 503:  # routed's own body: make it the API's shape
        return _json_error(
            view,
            ApiError(
                503,
                "unavailable",
                f"no worker can answer for {symbol} right now (rebalancing or the owner is "
                "unreachable); retry in a few seconds",
                retry=True,
            ),
        )
    return response


def _record(symbol: str) -> dict[str, Any] | None:
    record = symbol_to_window.get(symbol.encode())
    return record if record else None


def _not_yet(view: View, what: str, symbol: str) -> Response:
    return _json_error(
        view, ApiError(404, "not_found", f"no {what} for {symbol} yet", symbol=symbol)
    )


@app.page(API + "/symbols")
class SymbolsApi(View):
    async def get(self, request: Request) -> Response:
        here = str(app.conf.canonical_url).rstrip("/")
        out = []
        for symbol in settings.symbols:
            owner = owner_url(symbol_to_window.name, symbol)
            out.append(
                {
                    "symbol": symbol,
                    "path": url_form(symbol),
                    "partition": key_partition(symbol),
                    "owner": owner.rstrip("/") if owner else None,
                    "local": owner is not None and owner.rstrip("/") == here,
                }
            )
        return self.json({"symbols": out, "timeframe": settings.timeframe, "worker": here})


@app.page(API + "/windows/{symbol}")
class WindowApi(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await _for_symbol(self, request, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        record = _record(symbol)
        if not record or not record["window"].get("candles"):
            return _not_yet(self, "candles", symbol)
        return self.json(window_json(record["window"]))


@app.page(API + "/windows/{base}/{quote}")
class WindowSlashApi(WindowApi):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


@app.page(API + "/signals/{symbol}")
class SignalApi(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await _for_symbol(self, request, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        record = _record(symbol)
        if not record or not record.get("signal"):
            return _not_yet(self, "signal", symbol)
        return self.json(record["signal"])


@app.page(API + "/signals/{base}/{quote}")
class SignalSlashApi(SignalApi):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


@app.page(API + "/positions/{symbol}")
class PositionApi(View):
    async def get(self, request: Request, symbol: str) -> Response:
        return await _for_symbol(self, request, symbol, self._local)

    async def _local(self, symbol: str) -> Response:
        record = _record(symbol)
        if not record or not record.get("book"):
            return _not_yet(self, "position", symbol)
        return self.json(dict(record["book"], symbol=symbol))


@app.page(API + "/positions/{base}/{quote}")
class PositionSlashApi(PositionApi):
    async def get(self, request: Request, base: str, quote: str) -> Response:  # type: ignore[override]
        return await super().get(request, f"{base}/{quote}")


@app.page(API + "/positions")
class PositionsApi(View):
    """Every symbol's book, each from the worker that owns it (asked concurrently)."""

    async def get(self, request: Request) -> Response:
        here = str(app.conf.canonical_url).rstrip("/")
        auth = request.headers.get("Authorization")
        if auth is None and _TOKEN is not None:  # the dashboard's cookie was checked already
            auth = f"Bearer {_TOKEN}"
        headers = {"Authorization": auth} if auth else {}

        async def one(symbol: str) -> tuple[str, Any, str | None]:
            owner = (owner_url(symbol_to_window.name, symbol) or "").rstrip("/")
            if not owner or owner == here:
                record = _record(symbol)
                book = record.get("book") if record else None
                return symbol, (dict(book, symbol=symbol) if book else None), None
            url = f"{owner}{API}/positions/{url_form(symbol)}"
            try:
                async with app.http_client.get(url, headers=headers, timeout=5) as resp:
                    if resp.status == 200:
                        return symbol, await resp.json(), None
                    if resp.status == 404:
                        return symbol, None, None
                    return symbol, None, f"worker {owner} answered HTTP {resp.status}"
            except Exception as exc:  # noqa: BLE001 - one worker down must not hide the rest
                return symbol, None, f"worker {owner} did not answer: {type(exc).__name__}"

        results = await asyncio.gather(*(one(s) for s in settings.symbols))
        return self.json(
            {
                "positions": {s: book for s, book, _ in results},
                "errors": {s: err for s, _, err in results if err},
            }
        )


async def _page(view: View, request: Request, kind: str) -> Response:
    """One page of the worker's trade log: ``trades`` or ``equity`` (read on its thread)."""
    try:
        q = parse_page_query(request.query.items(), settings.symbols)
    except ApiError as exc:
        return _json_error(view, exc)
    read = {"trades": "trades_page", "equity": "equity_page"}[kind]
    rows, total = await runtime.trade_log(
        lambda tl: getattr(tl, read)(q.symbol, q.since, q.until, q.limit, q.offset)
    )
    body = page_body(kind, rows, total, q)
    body["worker"] = str(app.conf.canonical_url).rstrip("/")
    return view.json(body)


@app.page(API + "/trades")
class TradesApi(View):
    async def get(self, request: Request) -> Response:
        return await _page(self, request, "trades")


@app.page(API + "/equity")
class EquityApi(View):
    async def get(self, request: Request) -> Response:
        return await _page(self, request, "equity")


@app.page(API + "/models")
class ModelsApi(View):
    async def get(self, request: Request) -> Response:
        return self.json(runtime.models.status())


@app.page(API + "/health")
class HealthApi(HealthView):
    """The same body as ``GET /health``."""
