"""Alerts with hysteresis: one alert when a condition starts, one when it has ended.

A monitoring condition (drift, an accuracy drop, a losing streak, a missing model, ...) is
checked again and again, typically once per batch of candles. :class:`AlertBook` turns that
stream of checks into few messages:

* the first check that finds the condition active *raises* one alert; later active checks
  are quiet (the alert stays raised, its latest value is kept);
* the alert is *cleared* only after ``clear_after`` consecutive inactive checks (default 3),
  so a value flapping around its threshold raises once and clears once, never a storm; an
  active check in between starts the count again.

The book is a small JSON-able dict (``to_dict``/``from_dict``), kept in the symbol's record
so a restarted worker neither repeats nor forgets an alert. Alert ids are deterministic
(symbol, kind, time raised): the raise and the clear of one episode share an id, and a
replay of the same candles gives the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

__all__ = [
    "KINDS",
    "SEVERITY",
    "TAG",
    "Alert",
    "AlertBook",
    "alert_id",
    "format_alert",
]

TAG: Final = "[CANH BAO]"
"""The log tag every alert message starts with (``tinhieu.i18n.TAGS["warn"]``)."""

State = Literal["raised", "cleared"]
Severity = Literal["warning", "critical"]

SEVERITY: Final[dict[str, Severity]] = {
    "feature_drift": "warning",
    "prediction_drift": "warning",
    "error_drift": "critical",
    "accuracy_drop": "critical",
    "losing_streak": "warning",
    "model_missing": "critical",
    "exchange_unreachable": "critical",
    "partition_stalled": "critical",
}
"""Severity per kind; a kind not listed is a warning."""

KINDS: Final[tuple[str, ...]] = tuple(SEVERITY)

# kind -> (Vietnamese, English) text of a raised alert; fields value, threshold
_RAISED: Final[dict[str, tuple[str, str]]] = {
    "feature_drift": (
        "phân phối đặc trưng đã thay đổi (PSI {value:.2f} > {threshold:.2f})",
        "feature distribution has shifted (PSI {value:.2f} > {threshold:.2f})",
    ),
    "prediction_drift": (
        "tỷ lệ tín hiệu của mô hình đã thay đổi (PSI {value:.2f} > {threshold:.2f})",
        "the model's mix of signals has shifted (PSI {value:.2f} > {threshold:.2f})",
    ),
    "error_drift": (
        "tỷ lệ dự đoán sai đã tăng ({value:.0f} lần thay đổi được phát hiện)",
        "the error rate of the predictions has risen ({value:.0f} change(s) detected)",
    ),
    "accuracy_drop": (
        "độ chính xác 1 ngày {value:.1%} thấp hơn mức {threshold:.1%} (walk-forward trừ biên)",
        "1-day accuracy {value:.1%} is below {threshold:.1%} (walk-forward minus the margin)",
    ),
    "losing_streak": (
        "{value:.0f} lệnh lỗ liên tiếp (giới hạn {threshold:.0f})",
        "{value:.0f} losing trades in a row (limit {threshold:.0f})",
    ),
    "model_missing": (
        "không có mô hình: tín hiệu luôn là NEUTRAL",
        "no model loaded: every signal is NEUTRAL",
    ),
    "exchange_unreachable": (
        "không kết nối được sàn giao dịch",
        "the exchange cannot be reached",
    ),
    "partition_stalled": (
        "{value:.0f} partition đầu vào bị đứng",
        "{value:.0f} input partition(s) stalled",
    ),
}
_GENERIC: Final = ("{kind}: giá trị {value:g}, ngưỡng {threshold:g}",
                   "{kind}: value {value:g}, threshold {threshold:g}")
_CLEARED: Final = ("đã hết: {text}", "cleared: {text}")
_CLUSTER: Final = ("cụm", "cluster")


def alert_id(symbol: str, kind: str, raised_at_ms: int) -> str:
    """Deterministic id of one alert episode: the same for its raise and its clear."""
    key = f"{symbol}|{kind}|{int(raised_at_ms)}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


def _text(kind: str, value: float, threshold: float, lang: int) -> str:
    template = _RAISED.get(kind, _GENERIC)[lang]
    try:
        return template.format(kind=kind, value=value, threshold=threshold)
    except (ValueError, TypeError):  # a value that the format cannot show (nan is fine)
        return _GENERIC[lang].format(kind=kind, value=value, threshold=threshold)


@dataclass(frozen=True)
class Alert:
    """One raise or clear of a monitoring condition.

    ``symbol`` is ``""`` for a cluster-wide condition. ``value`` and ``threshold`` are those
    of the check that raised (or, for a clear, the last active check's value). ``at_ms`` is
    when this message was made (the check's time), ``raised_at_ms`` when the episode began.
    """

    id: str
    symbol: str
    kind: str
    state: State
    severity: Severity
    value: float
    threshold: float
    message: str
    message_en: str
    at_ms: int
    raised_at_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def make(cls, symbol: str, kind: str, state: State, value: float, threshold: float,
             at_ms: int, raised_at_ms: int) -> Alert:
        texts = []
        for lang in (0, 1):
            text = _text(kind, value, threshold, lang)
            if state == "cleared":
                text = _CLEARED[lang].format(text=text)
            texts.append(text)
        return cls(
            id=alert_id(symbol, kind, raised_at_ms),
            symbol=symbol,
            kind=kind,
            state=state,
            severity=SEVERITY.get(kind, "warning"),
            value=float(value),
            threshold=float(threshold),
            message=texts[0],
            message_en=texts[1],
            at_ms=int(at_ms),
            raised_at_ms=int(raised_at_ms),
        )


def format_alert(alert: Alert, language: str = "vi") -> str:
    """One line for logs, Discord and the dashboard, tag first.

    >>> a = Alert.make("BTC/USDT", "feature_drift", "raised", 0.41, 0.25, 0, 0)
    >>> format_alert(a)
    '[CANH BAO] BTC/USDT: phân phối đặc trưng đã thay đổi (PSI 0.41 > 0.25)'
    """
    lang = 1 if language == "en" else 0
    who = alert.symbol or _CLUSTER[lang]
    text = alert.message_en if lang else alert.message
    return f"{TAG} {who}: {text}"


class AlertBook:
    """Which conditions are raised, per symbol and kind, and for how many checks each has
    been inactive.

    Parameters
    ----------
    clear_after : int
        Consecutive inactive checks before a raised alert is cleared (>= 1).
    """

    def __init__(self, clear_after: int = 3) -> None:
        if int(clear_after) < 1:
            raise ValueError(f"clear_after must be at least 1, not {clear_after!r}")
        self.clear_after = int(clear_after)
        # "symbol|kind" -> {"raised_at", "value", "threshold", "quiet", "symbol", "kind"}
        self._open: dict[str, dict[str, Any]] = {}

    # --- state --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"open": {k: dict(v) for k, v in self._open.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, clear_after: int = 3) -> AlertBook:
        book = cls(clear_after=clear_after)
        for key, entry in ((d or {}).get("open") or {}).items():
            book._open[str(key)] = dict(entry)
        return book

    # --- checks -------------------------------------------------------------------------------
    def evaluate(self, symbol: str, conditions: Mapping[str, tuple[bool, float, float]],
                 now_ms: int) -> list[Alert]:
        """Apply one check of ``symbol``'s conditions; return the alerts raised or cleared.

        ``conditions`` maps a kind to ``(active, value, threshold)``. Kinds not given are
        left as they are (a check may cover only some kinds).
        """
        out: list[Alert] = []
        for kind, (active, value, threshold) in conditions.items():
            key = f"{symbol}|{kind}"
            entry = self._open.get(key)
            if active:
                if entry is None:
                    self._open[key] = {"symbol": symbol, "kind": kind, "raised_at": int(now_ms),
                                       "value": float(value), "threshold": float(threshold),
                                       "quiet": 0}
                    out.append(Alert.make(symbol, kind, "raised", float(value),
                                          float(threshold), now_ms, now_ms))
                else:
                    entry.update(value=float(value), threshold=float(threshold), quiet=0)
            elif entry is not None:
                entry["quiet"] = int(entry["quiet"]) + 1
                if entry["quiet"] >= self.clear_after:
                    del self._open[key]
                    out.append(Alert.make(symbol, kind, "cleared", float(entry["value"]),
                                          float(entry["threshold"]), now_ms,
                                          int(entry["raised_at"])))
        return out

    def active(self, symbol: str | None = None) -> list[Alert]:
        """The alerts raised and not yet cleared (of ``symbol`` when given), oldest first."""
        entries = sorted(self._open.values(), key=lambda e: (int(e["raised_at"]), e["kind"]))
        return [
            Alert.make(e["symbol"], e["kind"], "raised", float(e["value"]),
                       float(e["threshold"]), int(e["raised_at"]), int(e["raised_at"]))
            for e in entries
            if symbol is None or e["symbol"] == symbol
        ]
