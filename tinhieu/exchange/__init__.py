"""The exchange edge: closed candles and tickers through ccxt (async), errors mapped, retried.

Nothing else in the project talks to the exchange or sees a ccxt exception.

* :mod:`~tinhieu.exchange.errors`: our exception types, the ccxt mapping, the log messages.
* :mod:`~tinhieu.exchange.client`: :class:`ExchangeClient`, the one wrapper around ccxt,
  with the per-call retry helper.
* :mod:`~tinhieu.exchange.poller`: :class:`CandlePoller`, the per-symbol cursor that hands
  out each closed candle once.
* :mod:`~tinhieu.exchange.backoff`: :class:`PollBackoff`, the spacing and the one log line
  per failed poll while the exchange is away (the ingest's outage state).

``from tinhieu.exchange import ExchangeClient, CandlePoller, ExchangeError, ...`` is the
public surface; the submodules are an implementation detail.
"""

from __future__ import annotations

from tinhieu.exchange.backoff import PollBackoff
from tinhieu.exchange.client import (
    BASE_DELAY_S,
    DEFAULT_ATTEMPTS,
    DEFAULT_PAGE_LIMIT,
    RATE_LIMIT_BASE_DELAY_S,
    ExchangeClient,
)
from tinhieu.exchange.errors import (
    ExchangeConfigError,
    ExchangeDataError,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
)
from tinhieu.exchange.poller import CandlePoller

__all__ = [
    "BASE_DELAY_S",
    "DEFAULT_ATTEMPTS",
    "DEFAULT_PAGE_LIMIT",
    "RATE_LIMIT_BASE_DELAY_S",
    "CandlePoller",
    "ExchangeClient",
    "ExchangeConfigError",
    "ExchangeDataError",
    "ExchangeError",
    "ExchangeUnavailable",
    "PollBackoff",
    "RateLimited",
]
