"""The REST API's rules as plain functions (no Faust, no aiohttp): query parsing, the token
check and the typed error body. ``streams/api.py`` calls them; tests call them directly.

Every refusal is an :class:`ApiError` with an HTTP status, a machine-readable ``error`` code
and a ``detail`` that names the input and says what is accepted; the web layer turns it into
``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from tinhieu.symbols import UnknownSymbolError, normalize

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
MAX_BODY_BYTES = 65_536  # the API takes no bodies: anything larger is refused (413)
MAX_SYMBOL_CHARS = 32
MIN_TIME_MS = 1_230_768_000_000  # 2009-01-01, as the candle validation
MAX_TIME_MS = 32_503_680_000_000  # 3000-01-01
_SYMBOL_CHARS = re.compile(r"[A-Za-z0-9/_-]+")
PAGE_PARAMS = ("symbol", "since", "until", "limit", "offset")


class ApiError(Exception):
    """A request the API refuses; ``body()`` is the JSON answer."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.detail, **self.extra}


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A validated ``?symbol=&since=&until=&limit=&offset=`` (times in ms UTC, inclusive)."""

    symbol: str | None = None
    since: int | None = None
    until: int | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_symbol(raw: str, supported: Iterable[str]) -> str:
    """``BTC-USDT``, ``BTCUSDT``, ``btc``, ``BTC/USDT`` -> ``BTC/USDT``.

    Raises ``ApiError`` 400 ``invalid_symbol`` for text that cannot be a symbol (too long,
    odd characters) and 404 ``unknown_symbol`` (with the supported list) for a well-formed
    symbol that is not configured."""
    supported = tuple(supported)
    text = str(raw).strip()
    if not text or len(text) > MAX_SYMBOL_CHARS or not _SYMBOL_CHARS.fullmatch(text):
        shown = text[:MAX_SYMBOL_CHARS] + ("..." if len(text) > MAX_SYMBOL_CHARS else "")
        raise ApiError(
            400,
            "invalid_symbol",
            f"{shown!r} is not a symbol: use letters and digits such as BTC-USDT, BTCUSDT "
            f"or btc (at most {MAX_SYMBOL_CHARS} characters)",
            supported=list(supported),
        )
    try:
        return normalize(text, supported)
    except UnknownSymbolError:
        raise ApiError(
            404,
            "unknown_symbol",
            f"{text!r} is not one of the configured symbols (setting symbols, TINHIEU_SYMBOLS)",
            supported=list(supported),
        ) from None


def parse_time(name: str, raw: str) -> int:
    """A query time: integer ms since the epoch, or ISO 8601 (``2021-05-01``,
    ``2021-05-01T12:00``, ``...Z`` or ``+07:00``; UTC when no offset) -> ms UTC."""
    text = raw.strip()
    if re.fullmatch(r"\d{1,15}", text):
        ms = int(text)
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ApiError(
                400,
                "invalid_query",
                f"{name}={raw[:40]!r} is not a time: give ms since the epoch "
                "(1620000000000) or ISO 8601 (2021-05-01 or 2021-05-01T12:00Z)",
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ms = int(when.timestamp() * 1000)
    if not MIN_TIME_MS <= ms < MAX_TIME_MS:
        raise ApiError(
            400, "invalid_query", f"{name}={raw[:40]!r} is outside the years 2009 to 2999"
        )
    return ms


def parse_int(name: str, raw: str, low: int, high: int) -> int:
    """A non-negative integer query value within ``[low, high]``."""
    text = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", text):
        raise ApiError(400, "invalid_query", f"{name}={raw[:40]!r} is not an integer")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"{name}={value} is out of range: {low} to {high}")
    return value


def parse_page_query(
    query: Mapping[str, str] | Iterable[tuple[str, str]], supported: Iterable[str]
) -> PageQuery:
    """Validate the query string of ``/api/v1/trades`` and ``/api/v1/equity``.

    ``query`` is the request's query as (name, value) pairs or a mapping; a parameter not in
    ``PAGE_PARAMS``, or given twice, is refused (a typo must not widen the answer)."""
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name not in PAGE_PARAMS:
            raise ApiError(
                400,
                "invalid_query",
                f"unknown query parameter {name[:40]!r}; accepted: {', '.join(PAGE_PARAMS)}",
            )
        if name in seen:
            raise ApiError(400, "invalid_query", f"query parameter {name!r} given twice")
        seen[name] = value
    symbol = seen.get("symbol", "").strip()
    since = parse_time("since", seen["since"]) if seen.get("since", "").strip() else None
    until = parse_time("until", seen["until"]) if seen.get("until", "").strip() else None
    if since is not None and until is not None and since > until:
        raise ApiError(400, "invalid_query", f"since ({since}) is after until ({until})")
    limit = parse_int("limit", seen["limit"], 1, MAX_LIMIT) if "limit" in seen else DEFAULT_LIMIT
    offset = parse_int("offset", seen["offset"], 0, MAX_OFFSET) if "offset" in seen else 0
    return PageQuery(
        symbol=parse_symbol(symbol, supported) if symbol else None,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )


def token_ok(authorization: str | None, token: str | None) -> bool:
    """Does the ``Authorization`` header carry ``Bearer <token>``? (Always, with no token.)

    Compared in constant time (``hmac.compare_digest``) on bytes."""
    if token is None:
        return True
    if not authorization:
        return False
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class AuthFailures:
    """Wrong tokens per client address over a moving minute (``limits``' moving window, in
    memory, per worker): once ``per_minute`` were sent, :meth:`retry_after` says how long that
    address must wait, and every request of it that needs the token is refused meanwhile,
    a right one included (otherwise guessing would just go on). ``per_minute`` 0: no limit.

    The address is the TCP peer: behind a reverse proxy, every client shares the proxy's,
    so limit there instead (or raise the setting)."""

    def __init__(self, per_minute: int) -> None:
        self._item = RateLimitItemPerMinute(per_minute) if per_minute > 0 else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, address: str | None) -> int | None:
        """Whole seconds until ``address`` may try again, or None when it may now."""
        if self._item is None:
            return None
        key = address or "-"
        if self._limiter.test(self._item, key):
            return None
        reset = self._limiter.get_window_stats(self._item, key).reset_time
        return max(1, math.ceil(reset - time.time()))  # the limiter's own clock

    def failed(self, address: str | None) -> None:
        """Count one wrong token from ``address``."""
        if self._item is not None:
            self._limiter.hit(self._item, address or "-")


def too_many_failures(seconds: int) -> ApiError:
    """The 429 of an address that sent too many wrong tokens."""
    return ApiError(
        429, "too_many_failed_attempts",
        f"too many wrong tokens from this address; try again in {seconds} s "
        "(setting web_auth_failures_per_minute)", retry_after_s=seconds)


SESSION_COOKIE = "tinhieu_session"


def session_value(token: str) -> str:
    """The dashboard cookie's value for ``token``: an HMAC of the token, so the cookie never
    carries the token itself (a leaked cookie does not reveal it; changing the token ends
    every session)."""
    return hmac.new(token.encode(), b"tinhieu dashboard session v1", "sha256").hexdigest()


def session_ok(cookie: str | None, token: str | None) -> bool:
    """Does the dashboard cookie match ``token``? (Always, with no token.) Constant time."""
    if token is None:
        return True
    if not cookie:
        return False
    return hmac.compare_digest(cookie.strip().encode(), session_value(token).encode())


def request_authorized(
    authorization: str | None, cookie: str | None, token: str | None
) -> bool:
    """A request carries the token as ``Authorization: Bearer`` or the dashboard cookie."""
    return token_ok(authorization, token) or session_ok(cookie, token)


def page_body(key: str, rows: list[dict[str, Any]], total: int, query: PageQuery) -> dict[str, Any]:
    """The JSON of a page: the rows under ``key`` and what is needed to ask for the next."""
    next_offset = query.offset + len(rows)
    return {
        key: rows,
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
        "next_offset": next_offset if next_offset < total else None,
        "symbol": query.symbol,
        "since": query.since,
        "until": query.until,
    }
