import json

import pytest

from tinhieu.monitoring.alerts import Alert, AlertBook, alert_id, format_alert


def test_raises_once_and_stays_quiet_while_active() -> None:
    book = AlertBook(clear_after=3)
    first = book.evaluate("BTC/USDT", {"feature_drift": (True, 0.41, 0.25)}, 1_000)
    assert [(a.kind, a.state) for a in first] == [("feature_drift", "raised")]
    for t in range(2_000, 10_000, 1_000):
        assert book.evaluate("BTC/USDT", {"feature_drift": (True, 0.5, 0.25)}, t) == []
    assert [a.kind for a in book.active()] == ["feature_drift"]
    assert book.active()[0].value == 0.5


def test_flapping_value_gives_one_raise_and_one_clear() -> None:
    book = AlertBook(clear_after=3)
    out: list[Alert] = []
    # a value flapping around the threshold: never three inactive checks in a row
    pattern = [True, False, True, False, False, True, False, True, False, False] * 10
    for i, active in enumerate(pattern):
        out += book.evaluate("ETH/USDT", {"prediction_drift": (active, 0.3, 0.25)}, i)
    assert [a.state for a in out] == ["raised"]
    out += book.evaluate("ETH/USDT", {"prediction_drift": (True, 0.3, 0.25)}, 99)
    for i in range(100, 103):
        out += book.evaluate("ETH/USDT", {"prediction_drift": (False, 0.1, 0.25)}, i)
    assert [a.state for a in out] == ["raised", "cleared"]
    assert out[0].id == out[1].id  # one episode, one id
    assert out[1].at_ms == 102 and out[1].raised_at_ms == 0
    assert book.active() == []


def test_state_round_trips_through_json_and_ids_are_deterministic() -> None:
    book = AlertBook(clear_after=2)
    raised = book.evaluate("SOL/USDT", {"losing_streak": (True, 5, 5),
                                        "accuracy_drop": (False, 0.5, 0.4)}, 42)
    again = AlertBook.from_dict(json.loads(json.dumps(book.to_dict())), clear_after=2)
    assert again.evaluate("SOL/USDT", {"losing_streak": (True, 6, 5)}, 43) == []
    assert again.evaluate("SOL/USDT", {"losing_streak": (False, 0, 5)}, 44) == []
    cleared = again.evaluate("SOL/USDT", {"losing_streak": (False, 0, 5)}, 45)
    assert [a.state for a in cleared] == ["cleared"]
    assert raised[0].id == cleared[0].id == alert_id("SOL/USDT", "losing_streak", 42)
    assert json.loads(json.dumps(cleared[0].to_dict()))["state"] == "cleared"


def test_kinds_not_checked_are_left_alone_and_symbols_are_separate() -> None:
    book = AlertBook()
    book.evaluate("", {"exchange_unreachable": (True, 1, 0)}, 1)
    book.evaluate("BTC/USDT", {"model_missing": (True, 1, 0)}, 2)
    for t in range(3, 10):
        assert book.evaluate("BTC/USDT", {"losing_streak": (False, 0, 5)}, t) == []
    assert {a.kind for a in book.active()} == {"exchange_unreachable", "model_missing"}
    assert [a.kind for a in book.active("")] == ["exchange_unreachable"]


def test_messages_vietnamese_with_diacritics_and_english() -> None:
    a = Alert.make("BTC/USDT", "feature_drift", "raised", 0.4123, 0.25, 5, 5)
    assert format_alert(a) == (
        "[CANH BAO] BTC/USDT: phân phối đặc trưng đã thay đổi (PSI 0.41 > 0.25)")
    assert format_alert(a, "en").startswith("[CANH BAO] BTC/USDT: feature distribution")
    assert a.severity == "warning"
    c = Alert.make("", "exchange_unreachable", "cleared", 1, 0, 9, 5)
    assert format_alert(c).startswith("[CANH BAO] cụm: đã hết: ")
    assert c.severity == "critical"
    odd = Alert.make("X/USDT", "something_new", "raised", 2.0, 1.0, 0, 0)
    assert "something_new" in format_alert(odd, "en")


def test_clear_after_must_be_positive() -> None:
    with pytest.raises(ValueError, match="clear_after"):
        AlertBook(clear_after=0)
