"""Errors of the exchange edge: our exception types, the ccxt mapping, the log messages.

ccxt errors never leave :mod:`tinhieu.exchange`: :func:`map_error` turns each into an
:class:`ExchangeError` subclass whose message says what failed, for which symbol, and what to
do. The messages the client logs (retries, give-ups, bad data) are registered here so the
Vietnamese and English texts of one failure sit side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ccxt

from tinhieu import i18n

logger = logging.getLogger("tinhieu.exchange")
"""One logger for the whole exchange edge (client, poller, backoff)."""

i18n.register(
    {
        "exchange.connect": (
            i18n.TAGS["conn"],
            "sàn {exchange} ({host}): khung {timeframe}, timeout {timeout_s} s, khóa API {keys}",
            "exchange {exchange} ({host}): timeframe {timeframe}, timeout {timeout_s} s, "
            "API key {keys}",
        ),
        "exchange.unreachable": (
            i18n.TAGS["retry"],
            "không kết nối được sàn {exchange} ({host}) khi {what}{target}: {error}; "
            "thử lại sau {delay:.1f} s (lần {attempt}{of})",
            "cannot reach the exchange {exchange} ({host}) while {what}{target}: {error}; "
            "retrying in {delay:.1f} s (attempt {attempt}{of})",
        ),
        "exchange.timeout": (
            i18n.TAGS["retry"],
            "sàn {exchange} ({host}) không trả lời trong {timeout_s} s khi {what}{target}; "
            "thử lại sau {delay:.1f} s (lần {attempt}{of})",
            "the exchange {exchange} ({host}) did not answer within {timeout_s} s while "
            "{what}{target}; retrying in {delay:.1f} s (attempt {attempt}{of})",
        ),
        "exchange.unavailable": (
            i18n.TAGS["retry"],
            "sàn {exchange} ({host}) đang lỗi khi {what}{target}: {error}; "
            "thử lại sau {delay:.1f} s (lần {attempt}{of})",
            "the exchange {exchange} ({host}) failed while {what}{target}: {error}; "
            "retrying in {delay:.1f} s (attempt {attempt}{of})",
        ),
        "exchange.rate_limited": (
            i18n.TAGS["retry"],
            "sàn {exchange} ({host}) giới hạn tần suất (HTTP 429/418) khi {what}{target}; "
            "chờ {delay:.1f} s{hint} rồi thử lại (lần {attempt}{of})",
            "the exchange {exchange} ({host}) rate-limited us (HTTP 429/418) while "
            "{what}{target}; waiting {delay:.1f} s{hint} before retrying (attempt {attempt}{of})",
        ),
        "exchange.gave_up": (
            i18n.TAGS["error"],
            "{what}{target} trên sàn {exchange} ({host}) thất bại sau {attempt} lần: {error}",
            "{what}{target} on the exchange {exchange} ({host}) failed after {attempt} "
            "attempt(s): {error}",
        ),
        "exchange.bad_data": (
            i18n.TAGS["error"],
            "dữ liệu sai từ sàn {exchange} khi {what}{target}: {error}; bỏ qua lần này, "
            "lần sau lấy lại",
            "bad data from the exchange {exchange} while {what}{target}: {error}; skipped "
            "this time, fetched again next time",
        ),
        "exchange.bad_row": (
            i18n.TAGS["skip"],
            "nến {symbol} {ts} từ sàn bị bỏ qua: {reason}",
            "candle {symbol} {ts} from the exchange skipped: {reason}",
        ),
        "exchange.no_ticker": (
            i18n.TAGS["skip"],
            "sàn {exchange} không trả giá cho {symbol}",
            "the exchange {exchange} returned no ticker for {symbol}",
        ),
    }
)


# --- errors --------------------------------------------------------------------------


class ExchangeError(Exception):
    """Base of every error from the exchange edge (ccxt errors are mapped to these)."""


class ExchangeUnavailable(ExchangeError):
    """Network error, timeout, 5xx or maintenance: retried with backoff."""


class RateLimited(ExchangeUnavailable):
    """HTTP 429/418: retried with a longer backoff; ``retry_after_s`` from the exchange."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ExchangeDataError(ExchangeError):
    """Malformed response: logged, that fetch skipped, fetched again on the next poll."""


class ExchangeConfigError(ExchangeError):
    """Unknown exchange id, symbol not listed, bad API key: not retried; fix the setting."""


# --- helpers -------------------------------------------------------------------------


def short(text: object, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A response header by case-insensitive name."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


# --- the ccxt mapping ------------------------------------------------------------------


def map_error(
    exc: Exception,
    where: str,
    *,
    headers: Mapping[str, Any] | None = None,
    timeout_s: float,
) -> ExchangeError:
    """A ccxt (or parsing) exception as one of ours, with a message that says what to do.

    Parameters
    ----------
    exc:
        What the ccxt call raised.
    where:
        ``"<exchange> (<host>) <what> <symbol>"``, the start of the message.
    headers:
        The last response's headers (``Retry-After`` of a 429/418).
    timeout_s:
        The client's timeout, named in the timeout message.

    Raises
    ------
    Exception
        ``exc`` itself when it is none of the known kinds (a bug, not the exchange).
    """
    if isinstance(exc, ExchangeError):
        return exc
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        retry_after = float_or_none(header(headers, "Retry-After"))
        return RateLimited(f"{where}: rate limited: {short(exc)}", retry_after)
    if isinstance(exc, ccxt.BadResponse):
        return ExchangeDataError(f"{where}: malformed response: {short(exc)}")
    if isinstance(exc, ccxt.RequestTimeout):
        return ExchangeUnavailable(
            f"{where}: no answer within {timeout_s} s (TINHIEU_EXCHANGE_TIMEOUT_S)"
        )
    if isinstance(exc, ccxt.ExchangeNotAvailable) and exc.__cause__ is not None:
        return ExchangeUnavailable(
            f"{where}: cannot reach the exchange: {short(exc.__cause__)}; check the "
            f"network or TINHIEU_EXCHANGE_BASE_URL"
        )
    if isinstance(exc, (ccxt.NetworkError, ccxt.OperationFailed)):
        return ExchangeUnavailable(f"{where}: {short(exc)}")
    if isinstance(exc, ccxt.BadSymbol):
        return ExchangeConfigError(f"{where}: symbol not listed: {short(exc)}; fix TINHIEU_SYMBOLS")
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return ExchangeConfigError(
            f"{where}: the exchange refused the API key: {short(exc)}; check "
            f"TINHIEU_EXCHANGE_API_KEY / TINHIEU_EXCHANGE_SECRET (public candles need none)"
        )
    if isinstance(exc, ccxt.NotSupported):
        return ExchangeConfigError(f"{where}: not supported by this exchange: {short(exc)}")
    if isinstance(exc, ccxt.BaseError):
        return ExchangeDataError(f"{where}: the exchange answered with an error: {short(exc)}")
    if isinstance(exc, (TypeError, ValueError, KeyError, IndexError, AttributeError)):
        return ExchangeDataError(
            f"{where}: cannot parse the response ({type(exc).__name__}: {short(exc)})"
        )
    if isinstance(exc, OSError):
        return ExchangeUnavailable(f"{where}: cannot reach the exchange: {short(exc)}")
    raise exc
