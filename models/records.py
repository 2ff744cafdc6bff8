"""The records that travel on the topics. JSON on the wire, keyed by symbol.

``Candle`` comes from outside (exchange, replay files) and is validated field by field in
:mod:`tinhieu.candles` before it reaches a window; bytes that do not decode into a Candle go
to ``dead_letters`` with the reason.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, ClassVar, Literal

import faust

from tinhieu.core_types import Fill, Vote


class CoreRecord(faust.Record, abstract=True):
    """A record whose fields are those of a dataclass of :mod:`tinhieu.core_types`.

    ``class Order(CoreRecord, fields_of=Fill, serializer="json")`` gives ``Order`` the fields
    of ``Fill`` in their order, with their types and defaults, so the shape is declared once.
    A ``Literal`` type becomes the type of its values (``Side`` -> ``str``): Faust does not
    check literals, and the JSON stays the same. The class body may not add fields; the
    field list is appended to the class docstring (``help(Order)`` shows it).
    """

    fields_of: ClassVar[type | None] = None

    def __init_subclass__(cls, fields_of: type | None = None, **options: Any) -> None:
        if fields_of is not None:
            _take_fields(cls, fields_of)
        super().__init_subclass__(**options)


def _take_fields(cls: type[CoreRecord], source: type) -> None:
    if not dataclasses.is_dataclass(source):
        raise TypeError(f"{cls.__name__}: fields_of={source!r} is not a dataclass")
    own = cls.__dict__.get("__annotations__") or {}
    if own:
        raise TypeError(
            f"{cls.__name__} declares fields {', '.join(own)}; its fields come from "
            f"{source.__module__}.{source.__qualname__}: add them there"
        )
    hints = typing.get_type_hints(source)
    annotations: dict[str, Any] = {}
    shown: list[str] = []
    for f in dataclasses.fields(source):
        annotations[f.name] = _record_type(hints[f.name])
        shown.append(f"{f.name}: {_type_name(hints[f.name])}")
        if f.default is not dataclasses.MISSING:
            setattr(cls, f.name, f.default)
            shown[-1] += f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}: field {f.name} has a default factory; "
                            "records take plain defaults only")
    cls.__annotations__ = annotations
    cls.fields_of = source
    where = f"{source.__module__}.{source.__qualname__}"
    doc = inspect.cleandoc(cls.__doc__ or "")
    cls.__doc__ = f"{doc}\n\nFields (from {where}): {', '.join(shown)}."


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(v) for v in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _record_type(hint: Any) -> Any:
    if typing.get_origin(hint) is Literal:
        kinds = {type(v) for v in typing.get_args(hint)}
        if len(kinds) == 1:
            return kinds.pop()
    return hint


class Candle(faust.Record, serializer="json", validation=True, include_metadata=False):
    """One closed candle. ``timestamp`` is the candle OPEN time, integer ms UTC."""

    symbol: str
    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    timeframe: str = "1m"
    source: str = "exchange"


class ModelVote(CoreRecord, fields_of=Vote, serializer="json", include_metadata=False):
    """One model's vote inside a Signal; fields of :class:`tinhieu.core_types.Vote`."""


class Signal(faust.Record, serializer="json", include_metadata=False):
    """The ensemble's verdict for one closed candle; one per closed candle of every symbol.

    A candle without a verdict (no model, indicators warming up, a feature not finite, a
    model that failed) still gets a Signal: NEUTRAL, confidence 0, no votes, and ``reason``
    saying why, so the broker checks stops and fills pending orders on every candle.
    """

    symbol: str
    candle_time: int  # open time of the candle the signal describes, ms UTC
    action: str  # one of tinhieu.core_types.ACTIONS
    confidence: float  # 0..1
    open: float  # the candle the signal describes: the broker checks its levels against it
    high: float
    low: float
    close: float
    volume: float
    votes: list[ModelVote]
    model_version: str  # joined versions of the ensemble members
    feature_schema: str
    reason: str = ""  # "" for a model verdict; no_model | warming_up | features_not_finite ...
    latency_ms: float = 0.0
    emitted_at: float = 0.0  # unix seconds


class Order(CoreRecord, fields_of=Fill, serializer="json", include_metadata=False):
    """An order or fill from the broker agent; fields of :class:`tinhieu.core_types.Fill`.

    ``id`` is deterministic (see tinhieu.broker.order_id)."""


class DeadLetter(faust.Record, serializer="json", include_metadata=False):
    """A message that could not be processed, with why and where it came from."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    payload: str  # the raw bytes as UTF-8 (with replacement) or the record as JSON
    reason: str
    code: str  # machine-readable: decode_error, invalid_price, out_of_order, ...
    agent: str
    at: float  # unix seconds when it was dead-lettered


class NewsItem(faust.Record, serializer="json", validation=True, include_metadata=False):
    """One headline from a feed or a history file, with the configured symbols it mentions.

    Sent once per mentioned symbol, keyed by that symbol (co-partitioned with market_data);
    a headline that mentions none is sent once under the key ``*`` (see docs/NEWS.md).
    """

    id: str  # sha256 of the URL, or of source + title + published_ms (tinhieu.news.headline_id)
    source: str  # feed URL, or "file:<name>" for a replayed history file
    published_ms: int  # publication time, integer ms UTC
    title: str
    url: str
    symbols: list[str]  # every configured symbol the headline mentions (BTC/USDT, ...)
    sentiment: float  # VADER compound with the crypto vocabulary, -1..1


class SignalOutcome(faust.Record, serializer="json", include_metadata=False):
    """What a verdict turned out to be, once its label is known (tinhieu.outcomes).

    The label follows the training rule: the broker's long from the candle exits by take
    profit (``BUY``), by stop loss or a losing time exit (``SELL``), or otherwise
    (``NEUTRAL``). Deterministic: a re-delivered candle gives the same outcome, so
    ``(symbol, candle_time)`` identifies it.
    """

    symbol: str
    candle_time: int  # the signal's candle (open time, ms UTC)
    action: str  # what the ensemble said
    confidence: float
    model_version: str
    label: str  # what happened: BUY | NEUTRAL | SELL
    correct: bool
    exit_reason: str  # take_profit | stop_loss | time | horizon
    exit_time: int  # the candle that decided it (open time, ms UTC)
    net_return: float  # the long's after-fee return, fraction of the entry notional
    model: str = "champion"  # champion | challenger


class SignalOutcomes(faust.Record, serializer="json", include_metadata=False):
    """One message of ``signal_outcomes``: a symbol's outcomes in the order the candles
    decided them (``settings.outcome_flush_candles`` of them gathered, champion and
    challenger alike), so the topic costs a fraction of a write per candle."""

    symbol: str
    outcomes: list[SignalOutcome]


class Alert(faust.Record, serializer="json", include_metadata=False):
    """A monitoring condition raised or cleared (:class:`tinhieu.monitoring.alerts.Alert`);
    one message per change, never one per check."""

    id: str
    symbol: str  # "" for a cluster-wide condition
    kind: str  # feature_drift | prediction_drift | error_drift | accuracy_drop | ...
    state: str  # raised | cleared
    severity: str  # warning | critical
    value: float
    threshold: float
    message: str  # Vietnamese
    message_en: str
    at_ms: int  # this raise or clear (candle time for a symbol's condition)
    raised_at_ms: int = 0  # when the episode began: the raise and its clear share the id
