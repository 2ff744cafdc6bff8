"""The trade action, the order and the model vote: declared once here, derived everywhere else.

Standard library only: the Discord bot imports this module and must not pull in numpy,
scikit-learn or Faust.

What is derived from here (re-exported or built from these declarations, never redeclared):

* the action: ``tinhieu.labels`` (``CLASSES``, ``ACTIONS`` by class), ``tinhieu.broker``
  (``ACTIONS``, ``Side``, ``Reason``), ``tinhieu.bot`` (``ACTIONS`` and the texts keyed by
  action, side, reason and status);
* the order: ``tinhieu.broker.Fill`` (this :class:`Fill`), the Faust record
  ``models.records.Order`` (built from its fields), ``tinhieu.tradelog.TRADE_COLUMNS``
  (:data:`ORDER_FIELDS`) and the bot's orders feed;
* the vote: ``tinhieu.ensemble.Vote`` and ``tinhieu.bot.service.Vote`` (this :class:`Vote`)
  and the Faust record ``models.records.ModelVote`` (built from its fields).

The field names are the JSON names on the ``orders`` and ``signals`` topics: renaming one
changes the wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final, Literal, get_args

__all__ = [
    "ACTIONS",
    "ACTION_BY_CLASS",
    "CLASSES",
    "DOWN",
    "NEUTRAL",
    "ORDER_FIELDS",
    "REASONS",
    "SIDES",
    "STATUSES",
    "UP",
    "VOTE_FIELDS",
    "Action",
    "Fill",
    "Reason",
    "Side",
    "Status",
    "Vote",
]

# --- the trade action -------------------------------------------------------------------------
Action = Literal["BUY", "SELL", "NEUTRAL"]
"""What a signal or a model vote says: open a long, close it, or do nothing."""
ACTIONS: Final[tuple[Action, ...]] = get_args(Action)

Side = Literal["BUY", "SELL"]
"""The side of an order: the actions that trade."""
SIDES: Final[tuple[Side, ...]] = get_args(Side)

Reason = Literal["signal", "stop_loss", "take_profit"]
"""Why an order was placed: the model's signal, or one of the exit levels."""
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)

Status = Literal["FILLED", "REJECTED"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)

# The label classes the models predict, and the action each one stands for. The column order
# of every probability array (training, ensemble) is CLASSES: SELL, NEUTRAL, BUY.
DOWN, NEUTRAL, UP = -1, 0, 1
CLASSES: Final[tuple[int, int, int]] = (DOWN, NEUTRAL, UP)
ACTION_BY_CLASS: Final[dict[int, Action]] = {DOWN: "SELL", NEUTRAL: "NEUTRAL", UP: "BUY"}


# --- the order --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fill:
    """One filled market or exit order of the paper broker (``tinhieu.broker.step``).

    The fields, in this order, are the JSON fields of an ``orders`` message
    (``models.records.Order``) and the columns of the trade log's ``trades`` table.

    ``candle_time`` is the open time of the candle whose signal caused the order (for a stop
    loss or take profit: the entry's signal), ``fill_time`` the candle it filled on, both ms
    UTC. ``pnl`` is 0 for a BUY; for a SELL it is the round trip's profit net of both fees.
    """

    id: str  # deterministic: tinhieu.broker.order_id(symbol, candle_time, version, side, reason)
    symbol: str
    side: Side
    status: Status
    price: float
    amount: float
    fee: float
    entry_price: float
    stop_loss: float
    take_profit: float
    confidence: float  # 0..1, of the signal that placed the order
    reason: Reason
    candle_time: int
    fill_time: int
    model_version: str
    cash_after: float = 0.0
    pnl: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The fill as a dict with exactly the field names of an ``orders`` message."""
        return {name: getattr(self, name) for name in ORDER_FIELDS}


ORDER_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(Fill))


# --- the model vote ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Vote:
    """One model's vote inside an ensemble signal: its own argmax action and probability,
    its version and its weight in the ensemble."""

    model: str  # rf | svm | lr
    action: Action
    confidence: float  # 0..1, the model's probability of its own action
    version: str
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The vote as a dict with exactly the field names of a ``Signal``'s ``votes`` item."""
        return {name: getattr(self, name) for name in VOTE_FIELDS}


VOTE_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(Vote))
