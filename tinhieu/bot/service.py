"""The bot's service layer: what the Discord commands ask, answered as plain dataclasses.

No discord imports here (freqtrade's RPC habit): the Discord cog is a thin front end over
:class:`TradingService`, and tests call the service directly.

Sources:

- the workers' web views (``GET /signals/{symbol}``, ``GET /health``), tried in the order of
  ``settings.worker_urls``; every worker answers for every symbol (Faust routes the request to
  the owner of the key);
- the exchange, through an injected object with ``fetch_tickers(symbols)`` (normally
  ``tinhieu.exchange.ExchangeClient``) for prices and 24 h changes.

Every failure becomes :class:`ServiceUnavailable` (``what`` says which source) or
:class:`~tinhieu.symbols.UnknownSymbolError`; the bot turns both into a Vietnamese reply.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aiohttp

from tinhieu import i18n
from tinhieu.core_types import ACTIONS, Action, Vote
from tinhieu.settings import Settings
from tinhieu.symbols import UnknownSymbolError, normalize, url_form

__all__ = [
    "BUSY",
    "EXCHANGE",
    "NO_DATA",
    "WORKER",
    "Exchange",
    "Mover",
    "Movers",
    "PriceQuote",
    "ServiceUnavailable",
    "SignalView",
    "TradingService",
    "UnknownSymbolError",
    "Vote",
    "WorkerHealth",
]

logger = logging.getLogger(__name__)

i18n.register(
    {
        "bot.worker_failed": (
            i18n.TAGS["conn"],
            "worker {url} khong tra loi {path}: {detail}; thu worker tiep theo",
            "worker {url} did not answer {path}: {detail}; trying the next worker",
        ),
        "bot.exchange_failed": (
            i18n.TAGS["conn"],
            "san giao dich khong tra gia cho {symbols}: {detail}",
            "the exchange returned no prices for {symbols}: {detail}",
        ),
    }
)

#: ``ServiceUnavailable.what`` values.
WORKER = "worker"  # no worker web view answered
EXCHANGE = "exchange"  # the exchange did not answer or had no ticker
NO_DATA = "no_data"  # a worker answered 404: no window / signal for the symbol yet
BUSY = "busy"  # workers answered 503 "retry": partitions are being rebalanced


class ServiceUnavailable(Exception):
    """A source needed for an answer is down or has no data yet.

    Attributes
    ----------
    what:
        ``"worker"`` (no worker web view answered: start ``faust -A streams.app worker`` or fix
        ``TINHIEU_WEB_URLS``), ``"exchange"`` (the exchange did not answer: retry later) or
        ``"no_data"`` (the worker has no window or signal for the symbol yet: wait a minute)
        or ``"busy"`` (the workers are rebalancing partitions: retry in a few seconds).
    detail:
        What happened, for logs and for the reply.
    symbol:
        The symbol asked about, when there is one.
    """

    def __init__(self, what: str, detail: str, symbol: str | None = None) -> None:
        self.what = what
        self.detail = detail
        self.symbol = symbol
        super().__init__(f"{what} unavailable: {detail}")


class Exchange(Protocol):
    """What the service needs from the exchange wrapper (``tinhieu.exchange.ExchangeClient``)."""

    def fetch_tickers(
        self, symbols: Sequence[str]
    ) -> Awaitable[Mapping[str, Mapping[str, Any]]] | Mapping[str, Mapping[str, Any]]:
        """``{symbol: {"last": float, "percentage": float, ...}}`` for the given symbols."""
        ...


@dataclass(frozen=True)
class SignalView:
    """The latest ensemble signal of one symbol, as a worker serves it."""

    symbol: str
    action: Action
    confidence: float  # 0..1
    candle_time: int  # open time of the candle it describes, ms UTC
    close: float
    votes: tuple[Vote, ...]
    model_version: str
    latency_ms: float
    emitted_at: float  # unix seconds, 0 when unknown
    reason: str = ""  # why there is no model verdict: no_model, warming_up, ... ("" if one)


@dataclass(frozen=True)
class PriceQuote:
    """Current price in USDT and VND, with the latest quick prediction when there is one.

    ``prediction`` is ``None`` when no signal could be had; ``prediction_missing`` then says
    why (``"worker"`` or ``"no_data"``). The price itself never waits on the workers.
    """

    symbol: str
    last_usdt: float
    last_vnd: float
    change_24h_pct: float | None
    vnd_per_usdt: float
    prediction: SignalView | None
    prediction_missing: str | None = None


@dataclass(frozen=True)
class Mover:
    """One symbol's 24 h change."""

    symbol: str
    last_usdt: float
    change_24h_pct: float


@dataclass(frozen=True)
class Movers:
    """Top gainers (largest rise first) and losers (largest fall first) over 24 h.

    ``missing`` lists tracked symbols the exchange gave no change for.
    """

    gainers: tuple[Mover, ...]
    losers: tuple[Mover, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class WorkerHealth:
    """The answer of one worker's ``GET /health``."""

    url: str
    ok: bool
    detail: str
    latency_ms: float | None


class TradingService:
    """Answers the bot's questions from the workers' web views and the exchange.

    Parameters
    ----------
    settings:
        ``symbols`` (what is accepted), ``worker_urls`` (tried in order), ``vnd_per_usdt``.
    http:
        A shared ``aiohttp.ClientSession``; ``None`` makes the service open its own on first
        use and close it in :meth:`close`.
    exchange:
        An object with ``fetch_tickers(symbols)`` (sync or async), normally
        ``tinhieu.exchange.ExchangeClient(settings)``.
    timeout_s:
        Limit of one request to a worker, seconds.
    exchange_timeout_s:
        Limit of one exchange call, retries included; default ``settings.exchange_timeout_s``
        (the first call also loads the exchange's markets, which takes a few seconds).
    """

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession | None,
        exchange: Exchange,
        *,
        timeout_s: float = 3.0,
        exchange_timeout_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.exchange = exchange
        self.timeout_s = timeout_s
        self.exchange_timeout_s = exchange_timeout_s or settings.exchange_timeout_s
        self._http = http
        self._own_http = http is None

    # --- public surface ------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        """The supported symbols, normalized."""
        return tuple(self.settings.symbols)

    def normalize(self, raw: str) -> str:
        """``btc`` -> ``BTC/USDT``; raises ``UnknownSymbolError`` (with ``.supported``)."""
        return normalize(raw, self.symbols)

    async def latest_signal(self, symbol: str) -> SignalView:
        """The latest ensemble signal of ``symbol`` (any form the normalizer knows).

        Raises ``UnknownSymbolError`` or ``ServiceUnavailable`` (``worker``/``no_data``).
        """
        sym = self.normalize(symbol)
        data = await self._worker_json(f"/signals/{url_form(sym)}", sym)
        try:
            return _signal_from_json(data, sym)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable(
                WORKER, f"the worker sent a signal of an unexpected shape ({exc!r})", sym
            ) from None

    async def price(self, symbol: str) -> PriceQuote:
        """Price of ``symbol`` in USDT and VND, its 24 h change and the latest prediction.

        Raises ``UnknownSymbolError``, or ``ServiceUnavailable("exchange", ...)`` when there is
        no price. A missing prediction does not fail the call (see ``PriceQuote``).
        """
        sym = self.normalize(symbol)
        tickers, signal = await asyncio.gather(
            self._tickers([sym]), self._signal_or_reason(sym)
        )
        ticker = tickers.get(sym)
        last = _number(ticker.get("last")) if ticker else None
        if last is None or last <= 0:
            raise ServiceUnavailable(EXCHANGE, f"the exchange has no last price for {sym}", sym)
        rate = float(self.settings.vnd_per_usdt)
        prediction, missing = signal
        return PriceQuote(
            symbol=sym,
            last_usdt=last,
            last_vnd=last * rate,
            change_24h_pct=_number(ticker.get("percentage")) if ticker else None,
            vnd_per_usdt=rate,
            prediction=prediction,
            prediction_missing=missing,
        )

    async def movers(self, limit: int = 3) -> Movers:
        """Top ``limit`` gainers and losers over 24 h among the tracked symbols.

        A symbol is a gainer when its change is above zero and a loser when below; an
        unchanged one is neither. Raises ``ServiceUnavailable("exchange", ...)``.
        """
        tickers = await self._tickers(list(self.symbols))
        moves: list[Mover] = []
        missing: list[str] = []
        for sym in self.symbols:
            ticker = tickers.get(sym) or {}
            pct = _number(ticker.get("percentage"))
            last = _number(ticker.get("last"))
            if pct is None or last is None:
                missing.append(sym)
                continue
            moves.append(Mover(sym, last, pct))
        if not moves:
            raise ServiceUnavailable(
                EXCHANGE, f"the exchange gave no 24h change for {', '.join(self.symbols)}"
            )
        gainers = sorted((m for m in moves if m.change_24h_pct > 0), key=_by_change, reverse=True)
        losers = sorted((m for m in moves if m.change_24h_pct < 0), key=_by_change)
        return Movers(tuple(gainers[:limit]), tuple(losers[:limit]), tuple(missing))

    async def ping_workers(self) -> list[WorkerHealth]:
        """``GET /health`` on every worker URL, in order. Never raises."""
        return list(await asyncio.gather(*(self._health(url) for url in self._urls())))

    async def close(self) -> None:
        """Close the HTTP session if the service opened it."""
        if self._own_http and self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None if self._own_http else self._http

    # --- workers ---------------------------------------------------------------------

    def _urls(self) -> tuple[str, ...]:
        return tuple(u.rstrip("/") for u in self.settings.worker_urls)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or (self._own_http and self._http.closed):
            token = self.settings.web_token
            headers = (  # workers bound beyond localhost require the web token
                {"Authorization": f"Bearer {token.get_secret_value()}"} if token else None
            )
            self._http = aiohttp.ClientSession(headers=headers)
            self._own_http = True
        return self._http

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.timeout_s, connect=self.timeout_s)

    async def _worker_json(self, path: str, symbol: str | None = None) -> dict[str, Any]:
        """JSON of ``path`` from the first worker that answers.

        A 404 is an answer ("no data yet") and stops the search; refused connections,
        timeouts, 5xx and non-JSON bodies move on to the next worker.
        """
        failures: list[str] = []
        busy = False
        for url in self._urls():
            try:
                async with self._session().get(url + path, timeout=self._timeout()) as resp:
                    if resp.status == 404:
                        body = await _json_or_none(resp)
                        reason = (body or {}).get("error") if isinstance(body, dict) else None
                        raise ServiceUnavailable(NO_DATA, str(reason or "404 Not Found"), symbol)
                    if resp.status != 200:
                        body = await _json_or_none(resp)
                        if resp.status == 503 and isinstance(body, dict) and body.get("retry"):
                            busy = True
                            raise _WorkerError(f"HTTP 503: {body.get('error', 'retry')}")
                        raise _WorkerError(f"HTTP {resp.status}")
                    data = await _json_or_none(resp)
                    if not isinstance(data, dict):
                        raise _WorkerError("the body is not a JSON object")
                    return data
            except (aiohttp.ClientError, TimeoutError, _WorkerError) as exc:
                detail = _describe(exc)
                failures.append(f"{url}: {detail}")
                i18n.log(logger, logging.WARNING, "bot.worker_failed", url=url, path=path,
                         detail=detail)
        detail = "; ".join(failures) or "no worker URL configured"
        raise ServiceUnavailable(BUSY if busy else WORKER, detail, symbol)

    async def _signal_or_reason(self, symbol: str) -> tuple[SignalView | None, str | None]:
        try:
            return await self.latest_signal(symbol), None
        except ServiceUnavailable as exc:
            return None, exc.what

    async def _health(self, url: str) -> WorkerHealth:
        started = time.perf_counter()
        try:
            async with self._session().get(url + "/health", timeout=self._timeout()) as resp:
                elapsed = (time.perf_counter() - started) * 1000.0
                body = await _json_or_none(resp)
                ok = resp.status == 200
                detail = _health_detail(body) if ok else f"HTTP {resp.status}"
                return WorkerHealth(url, ok, detail, elapsed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return WorkerHealth(url, False, _describe(exc), None)

    # --- exchange --------------------------------------------------------------------

    async def _tickers(self, symbols: list[str]) -> Mapping[str, Mapping[str, Any]]:
        """Tickers from the injected exchange, every failure mapped to ServiceUnavailable.

        The catch is broad on purpose: this is the edge to an outside service
        (``tinhieu.exchange.ExchangeError``, network errors, timeouts, bugs in a ticker).
        """
        try:
            result = self.exchange.fetch_tickers(symbols)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, self.exchange_timeout_s)
            if not isinstance(result, Mapping):
                raise TypeError(f"fetch_tickers returned {type(result).__name__}, not a mapping")
            return result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - see docstring
            detail = _describe(exc)
            i18n.log(logger, logging.WARNING, "bot.exchange_failed", symbols=", ".join(symbols),
                     detail=detail)
            sym = symbols[0] if len(symbols) == 1 else None
            raise ServiceUnavailable(EXCHANGE, detail, sym) from None


class _WorkerError(Exception):
    """A worker answered, but not usefully (5xx, not JSON)."""


def _by_change(mover: Mover) -> float:
    return mover.change_24h_pct


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


async def _json_or_none(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None


def _health_detail(body: Any) -> str:
    if isinstance(body, dict):
        status = body.get("status")
        return str(status) if status is not None else "ok"
    return "ok"


def _action(value: object) -> Action:
    action = str(value).upper()
    if action not in ACTIONS:
        raise ValueError(f"action {action!r}")
    return cast(Action, action)


def _signal_from_json(data: Mapping[str, Any], symbol: str) -> SignalView:
    action = _action(data["action"])
    votes = tuple(
        Vote(
            model=str(v["model"]),
            action=_action(v["action"]),
            confidence=float(v["confidence"]),
            version=str(v.get("version", "")),
            weight=float(v.get("weight", 1.0)),
        )
        for v in data.get("votes") or ()
    )
    return SignalView(
        symbol=str(data.get("symbol") or symbol),
        action=action,
        confidence=float(data["confidence"]),
        candle_time=int(data["candle_time"]),
        close=float(data.get("close", 0.0)),
        votes=votes,
        model_version=str(data.get("model_version", "")),
        latency_ms=float(data.get("latency_ms", 0.0)),
        emitted_at=float(data.get("emitted_at", 0.0)),
        reason=str(data.get("reason") or ""),
    )
