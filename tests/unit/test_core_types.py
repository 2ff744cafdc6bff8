"""The action, order and vote are declared once in tinhieu.core_types; every other layer
re-exports or derives them, and the wire format stays as it was."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

from tinhieu import core_types
from tinhieu.core_types import (
    ACTION_BY_CLASS,
    ACTIONS,
    CLASSES,
    ORDER_FIELDS,
    REASONS,
    SIDES,
    STATUSES,
    VOTE_FIELDS,
    Fill,
    Vote,
)

# The JSON field names on the topics, spelled out once more on purpose: a rename in the core
# changes the wire format and must fail here.
WIRE_ORDER_FIELDS = (
    "id", "symbol", "side", "status", "price", "amount", "fee", "entry_price", "stop_loss",
    "take_profit", "confidence", "reason", "candle_time", "fill_time", "model_version",
    "cash_after", "pnl",
)
WIRE_VOTE_FIELDS = ("model", "action", "confidence", "version", "weight")


def a_fill(**changes: object) -> Fill:
    values: dict[str, object] = dict(
        id="abc", symbol="BTC/USDT", side="BUY", status="FILLED", price=100.0, amount=0.5,
        fee=0.05, entry_price=100.0, stop_loss=98.0, take_profit=105.0, confidence=0.7,
        reason="signal", candle_time=60_000, fill_time=120_000, model_version="v1",
        cash_after=949.95, pnl=0.0,
    )
    values.update(changes)
    return Fill(**values)  # type: ignore[arg-type]


def test_the_action_values_and_their_order() -> None:
    assert ACTIONS == ("BUY", "SELL", "NEUTRAL")
    assert SIDES == ("BUY", "SELL") and set(SIDES) < set(ACTIONS)
    assert REASONS == ("signal", "stop_loss", "take_profit")
    assert STATUSES == ("FILLED", "REJECTED")
    assert CLASSES == (-1, 0, 1)
    assert [ACTION_BY_CLASS[c] for c in CLASSES] == ["SELL", "NEUTRAL", "BUY"]


def test_the_wire_field_names_are_unchanged() -> None:
    assert ORDER_FIELDS == WIRE_ORDER_FIELDS
    assert VOTE_FIELDS == WIRE_VOTE_FIELDS
    assert tuple(a_fill().to_dict()) == WIRE_ORDER_FIELDS
    assert Vote("rf", "BUY", 0.6, "rf-1").to_dict() == {
        "model": "rf", "action": "BUY", "confidence": 0.6, "version": "rf-1", "weight": 1.0,
    }


def test_a_fill_is_frozen_and_cash_after_and_pnl_default_to_zero() -> None:
    fill = a_fill()
    with pytest.raises(FrozenInstanceError):
        fill.price = 1.0  # type: ignore[misc]
    assert a_fill(cash_after=0.0, pnl=0.0) == Fill(**{
        k: v for k, v in fill.to_dict().items() if k not in ("cash_after", "pnl")
    })


def test_the_core_module_imports_the_standard_library_only() -> None:
    # The Discord bot imports it: no numpy, scikit-learn, pandas or Faust may come along.
    code = (
        "import sys, tinhieu.core_types\n"
        "heavy = sorted(m for m in ('numpy', 'sklearn', 'pandas', 'scipy', 'faust', 'pydantic')"
        " if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""


def test_labels_and_ensemble_reexport_the_core_declarations() -> None:
    from tinhieu import ensemble, labels

    assert labels.ACTIONS is ACTION_BY_CLASS
    assert labels.CLASSES is CLASSES
    assert (labels.DOWN, labels.NEUTRAL, labels.UP) == (-1, 0, 1)
    assert ensemble.Vote is Vote
    assert set(core_types.__all__) <= set(dir(core_types))


def test_the_broker_reexports_the_core_declarations() -> None:
    from tinhieu import broker

    assert broker.Fill is Fill
    assert broker.ACTIONS is ACTIONS
    assert broker.Side is core_types.Side and broker.Reason is core_types.Reason
