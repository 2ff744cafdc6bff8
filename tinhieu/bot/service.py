"""The bot's service layer: what the Discord commands ask, answered as plain dataclasses.

No discord imports here (freqtrade's RPC habit): the Discord cog is a thin front end over
:class:`TradingService`, and tests call the service directly.

Sources:

- the workers' web views (``GET /signals/{symbol}``, ``GET /sentiment/{symbol}``,
  ``GET /monitoring/{symbol}``, ``GET /health``), tried in the order of
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
    "NO_NEWS",
    "WORKER",
    "Exchange",
    "ModelsView",
    "Mover",
    "Movers",
    "NewsHeadline",
    "PriceQuote",
    "Quality",
    "SentimentView",
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
NO_NEWS = "no_news"  # the workers hold no headline that mentions the symbol


class ServiceUnavailable(Exception):
    """A source needed for an answer is down or has no data yet.

    Attributes
    ----------
    what:
        ``"worker"`` (no worker web view answered: start ``faust -A streams.app worker`` or fix
        ``TINHIEU_WEB_URLS``), ``"exchange"`` (the exchange did not answer: retry later) or
        ``"no_data"`` (the worker has no window or signal for the symbol yet: wait a minute)
        or ``"busy"`` (the workers are rebalancing partitions: retry in a few seconds)
        or ``"no_news"`` (no headline mentions the symbol yet: news feeds off or quiet).
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
class NewsHeadline:
    """One headline that mentions a symbol, with its VADER sentiment in [-1, 1]."""

    title: str
    url: str  # "" for headlines replayed from a history file
    source: str  # the feed URL, or ``file:<name>``
    published_ms: int  # ms UTC
    sentiment: float


@dataclass(frozen=True)
class SentimentView:
    """A symbol's news sentiment now, as ``GET /sentiment/{symbol}`` serves it.

    ``score`` is the sum of the headlines' sentiments decayed with ``half_life_s`` (0 without
    news); ``headlines`` are the newest first.
    """

    symbol: str
    as_of_ms: int
    score: float
    mean: float | None
    count_1h: int
    count_24h: int
    total: int
    half_life_s: float | None
    headlines: tuple[NewsHeadline, ...]


@dataclass(frozen=True)
class Quality:
    """One model's live figures over one window (``quality[window][model]`` of
    ``GET /monitoring/{symbol}``); the figures are None when ``n`` is 0."""

    n: int
    accuracy: float | None
    balanced_accuracy: float | None
    buy_trades: int
    buy_hit_rate: float | None
    calibration_error: float | None
    paper_return_pct: float | None
    neutral_accuracy: float | None  # the always-NEUTRAL rule on the same outcomes
    neutral_balanced_accuracy: float | None


@dataclass(frozen=True)
class ModelsView:
    """What serves a symbol, and how well, from ``/health`` (``models``), the latest signal
    and ``/monitoring/{symbol}``. A part a worker could not give is None, and its
    ``*_missing`` says why (``"no_data"``, ``"worker"``, ``"busy"``)."""

    symbol: str
    champion: str | None  # MLflow alias versions (None: not set / file registry)
    challenger: str | None
    loaded: str | None  # the model version the workers serve
    shadow: str | None  # the challenger's ensemble scored in the shadow
    why_no_model: str | None  # the worker's reason when no model serves the symbol
    signal: SignalView | None  # the members and their versions
    walk_forward: Mapping[str, Any] | None  # pooled walk-forward figures (and baselines)
    # (window_s, champion, challenger or None when it has no outcome in the window)
    quality: tuple[tuple[int, Quality, Quality | None], ...]
    health_missing: str | None = None
    signal_missing: str | None = None
    monitoring_missing: str | None = None


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

    async def sentiment(self, symbol: str, limit: int = 10) -> SentimentView:
        """The news sentiment of ``symbol`` now with its newest ``limit`` headlines.

        Raises ``UnknownSymbolError``, ``ServiceUnavailable`` (``worker``/``busy``) or
        ``ServiceUnavailable("no_news", ...)`` when no headline mentions the symbol yet.
        """
        sym = self.normalize(symbol)
        try:
            data = await self._worker_json(f"/sentiment/{url_form(sym)}", sym)
        except ServiceUnavailable as exc:
            if exc.what != NO_DATA:
                raise
            raise ServiceUnavailable(NO_NEWS, exc.detail, sym) from None
        try:
            view = _sentiment_from_json(data, sym, limit)
        except (KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable(
                WORKER, f"the worker sent a sentiment of an unexpected shape ({exc!r})", sym
            ) from None
        if view.total == 0 and not view.headlines:
            raise ServiceUnavailable(NO_NEWS, f"no headline mentions {sym} yet", sym)
        return view

    async def signal_with_sentiment(
        self, symbol: str
    ) -> tuple[SignalView, SentimentView | None, str | None]:
        """:meth:`latest_signal` and, asked at the same time, the symbol's sentiment.

        The sentiment never fails the call: it is None with why (``"no_news"``,
        ``"worker"``, ``"busy"``) beside it. Raises what :meth:`latest_signal` raises.
        """
        sym = self.normalize(symbol)
        signal, (news, missing) = await asyncio.gather(
            self.latest_signal(sym), self._sentiment_or_reason(sym)
        )
        return signal, news, missing

    async def models(self, symbol: str) -> ModelsView:
        """The symbol's champion and challenger, the members of its latest signal, its
        walk-forward figures and rolling live quality (``/health``, ``/signals``,
        ``/monitoring``, asked at the same time).

        Raises ``UnknownSymbolError``, or ``ServiceUnavailable`` (``worker``/``busy``) when
        no worker answered any of the three.
        """
        sym = self.normalize(symbol)
        health, signal, monitoring = await asyncio.gather(
            self._part("/health", sym),
            self._signal_or_reason(sym),
            self._part(f"/monitoring/{url_form(sym)}", sym),
        )
        (health_json, health_missing), (sig, signal_missing) = health, signal
        monitoring_json, monitoring_missing = monitoring
        down = [m for m in (health_missing, signal_missing, monitoring_missing)
                if m in (WORKER, BUSY)]
        if len(down) == 3:
            what = BUSY if BUSY in down else WORKER
            raise ServiceUnavailable(what, f"no worker answered for the models of {sym}", sym)
        try:
            return _models_from_json(sym, health_json, sig, monitoring_json,
                                     health_missing, signal_missing, monitoring_missing)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ServiceUnavailable(
                WORKER, f"the worker sent models or monitoring of an unexpected shape ({exc!r})",
                sym,
            ) from None

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

    async def _sentiment_or_reason(self, symbol: str) -> tuple[SentimentView | None, str | None]:
        try:
            return await self.sentiment(symbol), None
        except ServiceUnavailable as exc:
            return None, exc.what

    async def _part(self, path: str, symbol: str) -> tuple[dict[str, Any] | None, str | None]:
        try:
            return await self._worker_json(path, symbol), None
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


def _optional(value: object) -> float | None:
    return None if value is None else _number(value)


def _sentiment_from_json(data: Mapping[str, Any], symbol: str, limit: int) -> SentimentView:
    headlines = tuple(
        NewsHeadline(
            title=str(h["title"]),
            url=str(h.get("url") or ""),
            source=str(h.get("source") or ""),
            published_ms=int(h["published_ms"]),
            sentiment=float(h["sentiment"]),
        )
        for h in (data.get("latest") or ())[:limit]  # the view sends the newest first
    )
    return SentimentView(
        symbol=str(data.get("symbol") or symbol),
        as_of_ms=int(data["as_of_ms"]),
        score=float(data.get("score") or 0.0),
        mean=_optional(data.get("mean")),
        count_1h=int(data.get("count_1h") or 0),
        count_24h=int(data.get("count_24h") or 0),
        total=int(data.get("total") or 0),
        half_life_s=_optional(data.get("half_life_s")),
        headlines=headlines,
    )


def _quality(data: Mapping[str, Any]) -> Quality:
    baseline = data.get("baseline") or {}
    return Quality(
        n=int(data.get("n") or 0),
        accuracy=_optional(data.get("accuracy")),
        balanced_accuracy=_optional(data.get("balanced_accuracy")),
        buy_trades=int(data.get("buy_trades") or 0),
        buy_hit_rate=_optional(data.get("buy_hit_rate")),
        calibration_error=_optional(data.get("calibration_error")),
        paper_return_pct=_optional(data.get("paper_return_pct")),
        neutral_accuracy=_optional(baseline.get("accuracy")),
        neutral_balanced_accuracy=_optional(baseline.get("balanced_accuracy")),
    )


def _window_s(key: str) -> int:
    return int(str(key).rstrip("s"))


def _models_from_json(
    symbol: str,
    health: Mapping[str, Any] | None,
    signal: SignalView | None,
    monitoring: Mapping[str, Any] | None,
    health_missing: str | None,
    signal_missing: str | None,
    monitoring_missing: str | None,
) -> ModelsView:
    models = (health or {}).get("models") or {}
    aliases = (models.get("aliases") or {}).get(symbol) or {}
    quality: list[tuple[int, Quality, Quality | None]] = []
    for key, by_model in sorted(((monitoring or {}).get("quality") or {}).items(),
                                key=lambda kv: _window_s(kv[0])):
        champion = _quality(by_model.get("champion") or {})
        challenger = _quality(by_model.get("challenger") or {})
        quality.append((_window_s(key), champion, challenger if challenger.n > 0 else None))
    if health is not None and not models:
        health_missing = NO_DATA  # a worker without the models section
    walk_forward = (monitoring or {}).get("walk_forward")
    return ModelsView(
        symbol=symbol,
        champion=_text_or_none(aliases.get("champion")),
        challenger=_text_or_none(aliases.get("challenger")),
        loaded=_text_or_none((models.get("loaded") or {}).get(symbol)),
        shadow=_text_or_none((models.get("shadow") or {}).get(symbol)),
        why_no_model=_text_or_none((models.get("missing") or {}).get(symbol)),
        signal=signal,
        walk_forward=walk_forward if isinstance(walk_forward, Mapping) else None,
        quality=tuple(quality),
        health_missing=health_missing,
        signal_missing=signal_missing,
        monitoring_missing=monitoring_missing,
    )


def _text_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)
