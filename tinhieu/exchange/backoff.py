"""Spacing and reporting of repeated polls while the exchange fails (the ingest's outage state).

The ingest polls on a timer every ``poll_interval_s``. After ``n`` failed polls in a row the
next one waits ``base_s * 2 ** (n - 1)``, capped at ``max_s`` (the first failure changes
nothing, the second doubles the wait, ...); a ``Retry-After`` from the exchange is obeyed even
above the cap. Every failed poll is logged as **one** line (which symbols, failing since when,
the error, when the next attempt is); the first poll that works again is logged as one line
saying the exchange answers again and since when it had been failing. :meth:`PollBackoff.health`
says the same for ``/health``.

Why not tenacity: tenacity retries inside one call, holding it between attempts. The ingest's
attempts are separate timer ticks that run only while this worker is the leader; a retry loop
held inside one tick would go on polling after leadership moved to another worker (two
ingests), and would hide the outage from ``/health`` until it returned. What is left to write
is the schedule itself (one line) and the outage record, which tenacity does not keep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tinhieu import i18n
from tinhieu.exchange.errors import (
    ExchangeConfigError,
    ExchangeError,
    ExchangeUnavailable,
    RateLimited,
    logger,
    short,
)

Clock = Callable[[], float]

i18n.register(
    {
        "exchange.poll_failed": (
            i18n.TAGS["retry"],
            "không lấy được nến {symbols} từ sàn {exchange} từ {since} (lần thử thất bại thứ "
            "{failures}): {error}; thử lại sau {delay:.1f} s",
            "cannot fetch candles for {symbols} from the exchange {exchange} since {since} "
            "(failed attempt {failures}): {error}; next attempt in {delay:.1f} s",
        ),
        "exchange.recovered": (
            i18n.TAGS["conn"],
            "sàn {exchange} trả lời lại, đã lấy được nến; trước đó lỗi từ {since} "
            "({duration}, {failures} lần thử thất bại)",
            "the exchange {exchange} answers again, candles fetched; it had been failing since "
            "{since} ({duration}, {failures} failed attempt(s))",
        ),
    }
)


def iso(wall_s: float) -> str:
    """Seconds since the epoch as an ISO 8601 UTC time, to the second."""
    return datetime.fromtimestamp(wall_s, UTC).isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min 5 s"``, ``"3 h 4 min"``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s"
    return f"{total // 3600} h {total % 3600 // 60} min"


def describe(exc: BaseException) -> str:
    """One line for an error: ours carry their own explanation, anything else its type."""
    text = str(exc) if isinstance(exc, ExchangeError) else f"{type(exc).__name__}: {exc}"
    return short(text, 300)


class PollBackoff:
    """When the next poll may run, and one log line per failed poll.

    Parameters
    ----------
    base_s:
        Wait after the first failed poll (the poll interval: the schedule does not change).
    max_s:
        Longest wait between two attempts (``settings.ingest_backoff_max_s``).
    exchange:
        How the exchange is named in the log lines, e.g. ``"binance (api.binance.com)"``.
    clock:
        Monotonic seconds: decides when the next attempt is due.
    wall:
        Seconds since the epoch: the times shown in logs and ``/health``.
    """

    def __init__(
        self,
        base_s: float,
        max_s: float,
        exchange: str,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        if base_s <= 0 or max_s <= 0:
            raise ValueError(f"base_s ({base_s}) and max_s ({max_s}) must be positive")
        self.base_s = base_s
        self.max_s = max_s
        self.exchange = exchange
        self._clock = clock
        self._wall = wall
        self.failures = 0
        """Failed polls in a row (0: the last poll worked, or none ran yet)."""
        self._since_wall = 0.0
        self._since = 0.0
        self._next_at = 0.0
        self._last_error = ""
        self._failed_symbols: list[str] = []
        self._unreachable = False
        self._last_poll: float | None = None

    def delay_after(self, failures: int) -> float:
        """Wait before the next attempt after ``failures`` failed polls in a row."""
        if failures <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - 1, 60))

    def next_attempt_in(self) -> float:
        """Seconds until the next attempt is due (0: due now)."""
        if self.failures == 0:
            return 0.0
        return max(0.0, self._next_at - self._clock())

    def due(self, slack_s: float = 0.0) -> bool:
        """May a poll run now? ``slack_s``: an attempt due that soon counts as due (the timer
        ticks at a fixed interval, a few ms early or late)."""
        return self.next_attempt_in() <= slack_s

    def failed(self, errors: Mapping[str, BaseException], symbols: int) -> float:
        """Record a failed poll and log it as one line; returns the wait before the next one.

        Parameters
        ----------
        errors:
            The error of each symbol whose fetch failed (one error for all of them when the
            markets could not be loaded).
        symbols:
            How many symbols the poll was for: when all failed for network reasons the
            exchange is *unreachable*; otherwise it is *failing*.
        """
        now = self._clock()
        if self.failures == 0:
            self._since = now
            self._since_wall = self._wall()
        self.failures += 1
        delay = self.delay_after(self.failures)
        waits = [
            e.retry_after_s
            for e in errors.values()
            if isinstance(e, RateLimited) and e.retry_after_s is not None
        ]
        if waits:
            delay = max(delay, *waits)  # a ban lengthens when retried early
        self._next_at = now + delay
        first = next(iter(errors.values()), None)
        self._last_error = describe(first) if first is not None else "unknown error"
        self._failed_symbols = sorted(errors)
        self._unreachable = len(errors) >= symbols and all(
            isinstance(e, ExchangeUnavailable) for e in errors.values()
        )
        needs_fix = any(
            isinstance(e, ExchangeConfigError) or not isinstance(e, ExchangeError)
            for e in errors.values()
        )
        i18n.log(
            logger,
            logging.ERROR if needs_fix else logging.WARNING,
            "exchange.poll_failed",
            symbols=", ".join(self._failed_symbols) or "-",
            exchange=self.exchange,
            since=iso(self._since_wall),
            failures=self.failures,
            error=self._last_error,
            delay=delay,
        )
        return delay

    def succeeded(self) -> None:
        """Record a poll that worked; after failures, log one line that the exchange is back."""
        self._last_poll = self._wall()
        if self.failures:
            i18n.log(
                logger,
                logging.INFO,
                "exchange.recovered",
                exchange=self.exchange,
                since=iso(self._since_wall),
                duration=duration(self._clock() - self._since),
                failures=self.failures,
            )
        self.failures = 0
        self._failed_symbols = []
        self._unreachable = False

    def health(self) -> dict[str, Any]:
        """The ``exchange`` section of ``/health``.

        ``{"status": "ok", "last_poll": ...}`` after a poll that worked; after failed polls
        ``"unreachable"`` (every symbol failed for network reasons) or ``"failing"`` (bad
        data, a setting to fix, or only some symbols), with ``since``, ``last_error``,
        ``next_attempt_in_s``; ``"starting"`` before the first poll.
        """
        last_poll = iso(self._last_poll) if self._last_poll is not None else None
        if self.failures == 0:
            if last_poll is None:
                return {"status": "starting"}
            return {"status": "ok", "last_poll": last_poll}
        return {
            "status": "unreachable" if self._unreachable else "failing",
            "since": iso(self._since_wall),
            "last_error": self._last_error,
            "next_attempt_in_s": round(self.next_attempt_in(), 1),
            "failed_attempts": self.failures,
            "failed_symbols": list(self._failed_symbols),
            "last_poll": last_poll,
        }
