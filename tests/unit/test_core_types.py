"""The action, order and vote are declared once in tinhieu.core_types; every other layer
re-exports or derives them, and the wire format stays as it was."""

from __future__ import annotations

import json
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


def test_the_order_and_vote_records_are_built_from_the_core_fields() -> None:
    from models.records import CoreRecord, ModelVote, Order

    assert tuple(Order._options.fields) == ORDER_FIELDS
    assert tuple(ModelVote._options.fields) == VOTE_FIELDS
    assert Order._options.fields["side"] is str and Order._options.fields["candle_time"] is int
    assert Order._options.defaults == {"cash_after": 0.0, "pnl": 0.0}
    assert ModelVote._options.defaults == {"weight": 1.0}
    fill = a_fill()
    wire = json.loads(Order(**fill.to_dict()).dumps())
    assert wire == fill.to_dict()  # the same names, order and values as before
    assert Order.loads(json.dumps(wire).encode()).asdict() == fill.to_dict()
    vote = Vote("svm", "SELL", 0.55, "svm-2", 0.5)
    assert json.loads(ModelVote(**vote.to_dict()).dumps()) == vote.to_dict()
    assert "Fields (from tinhieu.core_types.Fill): id: str" in (Order.__doc__ or "")

    with pytest.raises(TypeError, match="its fields come from tinhieu.core_types.Vote"):

        class Extra(CoreRecord, fields_of=Vote, serializer="json"):  # noqa: F841
            extra: str


def test_the_trade_log_columns_are_the_order_fields() -> None:
    from tinhieu.tradelog import TRADE_COLUMNS, TradeLog

    assert TRADE_COLUMNS == ORDER_FIELDS
    with TradeLog(":memory:", clock=lambda: 1.0) as log:
        columns = [r["name"] for r in log._db.execute("PRAGMA table_info(trades)")]
        assert columns == ["seq", *ORDER_FIELDS, "recorded_at"]
        for i, side in enumerate(SIDES):  # the table's CHECK accepts every side of the core
            assert log.record_fill(a_fill(id=f"o{i}", side=side))


def test_the_bot_uses_the_core_vote_and_action_without_heavy_imports() -> None:
    from tinhieu.bot import service

    assert service.Vote is Vote and service.ACTIONS is ACTIONS
    code = (
        "import sys, tinhieu.bot.service\n"
        "print(','.join(m for m in ('numpy', 'sklearn', 'pandas', 'scipy', 'faust')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == ""
    view = service._signal_from_json(
        {"action": "buy", "confidence": 0.7, "candle_time": 60_000,
         "votes": [{"model": "rf", "action": "sell", "confidence": 0.6, "version": "rf-1"}]},
        "BTC/USDT",
    )
    assert view.action == "BUY" and view.votes == (Vote("rf", "SELL", 0.6, "rf-1", 1.0),)
    with pytest.raises(ValueError, match="HOLD"):
        service._signal_from_json(
            {"action": "BUY", "confidence": 0.7, "candle_time": 60_000,
             "votes": [{"model": "rf", "action": "hold", "confidence": 0.6}]},
            "BTC/USDT",
        )


def test_the_bot_texts_cover_every_core_value_and_the_feed_checks_every_number() -> None:
    from tinhieu.bot import messages, orders_feed

    assert set(messages.ACTION_VI) == set(messages.ACTION_ICON) == set(ACTIONS)
    assert set(messages.ACTION_COLOR) == set(ACTIONS)
    assert set(messages.REASON_VI) == set(REASONS)
    assert set(messages.STATUS_VI) == set(STATUSES)
    numbers = {name for name in ORDER_FIELDS if isinstance(a_fill().to_dict()[name], float)}
    assert set(orders_feed._NUMBER_FIELDS) == numbers
    with pytest.raises(ValueError, match="is not one of BUY, SELL"):
        orders_feed.decode_order(json.dumps(a_fill().to_dict() | {"side": "HOLD"}).encode())
