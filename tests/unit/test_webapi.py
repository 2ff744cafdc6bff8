"""The REST API's pure rules: query parsing, symbols, the token, pages; the trade log's
paged reads; the web_token setting."""

from __future__ import annotations

import pytest

from tinhieu.settings import SettingsError, load_settings
from tinhieu.tradelog import TRADE_COLUMNS, TradeLog
from tinhieu.webapi import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    ApiError,
    PageQuery,
    page_body,
    parse_page_query,
    parse_symbol,
    parse_time,
    token_ok,
)

SYMBOLS = ("BTC/USDT", "ETH/USDT")


def refused(query: object, status: int = 400, error: str = "invalid_query") -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_page_query(query, SYMBOLS)  # type: ignore[arg-type]
    assert info.value.status == status and info.value.error == error
    assert set(info.value.body()) >= {"error", "detail"}
    return info.value


def test_empty_query_gives_the_defaults() -> None:
    assert parse_page_query({}, SYMBOLS) == PageQuery(None, None, None, DEFAULT_LIMIT, 0)


def test_every_parameter_is_parsed() -> None:
    q = parse_page_query(
        [
            ("symbol", "btc-usdt"),
            ("since", "2021-05-01"),
            ("until", "1620000060000"),
            ("limit", "5"),
            ("offset", "10"),
        ],
        SYMBOLS,
    )
    assert q == PageQuery("BTC/USDT", 1619827200000, 1620000060000, 5, 10)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "ten"),
        ("limit", "1.5"),
        ("limit", "0"),
        ("limit", str(MAX_LIMIT + 1)),
        ("limit", "-1"),
        ("limit", ""),
        ("limit", "9" * 40),
        ("offset", "-1"),
        ("offset", "x"),
        ("since", "yesterday"),
        ("since", "2021-13-01"),
        ("until", "1999-01-01"),
        ("until", "3100-01-01"),
        ("since", "12"),
    ],
)
def test_bad_values_are_400(name: str, value: str) -> None:
    exc = refused({name: value})
    assert name in exc.detail


def test_unknown_and_repeated_parameters_are_400() -> None:
    assert "accepted" in refused({"limt": "5"}).detail
    assert "twice" in refused([("limit", "5"), ("limit", "6")]).detail


def test_since_after_until_is_400() -> None:
    refused({"since": "2021-05-02", "until": "2021-05-01"})


def test_times_iso_with_offsets_and_ms() -> None:
    assert parse_time("since", "2021-05-01T00:00Z") == 1619827200000
    assert parse_time("since", "2021-05-01T07:00+07:00") == 1619827200000
    assert parse_time("since", "1619827200000") == 1619827200000


def test_symbols_malformed_400_unknown_404() -> None:
    assert parse_symbol("eth", SYMBOLS) == "ETH/USDT"
    assert parse_symbol("BTC/USDT", SYMBOLS) == "BTC/USDT"
    for bad in ("", "<script>", "BTC USDT", "x" * 200, "btc%00", "../etc"):
        with pytest.raises(ApiError) as info:
            parse_symbol(bad, SYMBOLS)
        assert info.value.status == 400 and info.value.error == "invalid_symbol"
        assert len(info.value.detail) < 200
    with pytest.raises(ApiError) as info:
        parse_symbol("DOGE", SYMBOLS)
    assert info.value.status == 404 and info.value.body()["supported"] == list(SYMBOLS)
    exc = refused({"symbol": "DOGE"}, 404, "unknown_symbol")
    assert "DOGE" in exc.detail


def test_token() -> None:
    assert token_ok(None, None) and token_ok("anything", None)
    assert token_ok("Bearer s3cret", "s3cret") and token_ok("bearer  s3cret ", "s3cret")
    for header in (None, "", "s3cret", "Basic s3cret", "Bearer s3cre", "Bearer s3cret2"):
        assert not token_ok(header, "s3cret"), header
    assert not token_ok("Bearer ünïcode", "s3cret")


def test_page_body_next_offset() -> None:
    q = PageQuery(limit=2, offset=2)
    assert page_body("trades", [{}, {}], 5, q)["next_offset"] == 4
    assert page_body("trades", [{}], 5, PageQuery(limit=2, offset=4))["next_offset"] is None
    assert page_body("trades", [], 0, PageQuery())["total"] == 0


def _fill(i: int, symbol: str) -> dict[str, object]:
    row: dict[str, object] = {c: 0.0 for c in TRADE_COLUMNS}
    row.update(
        id=f"o{i}",
        symbol=symbol,
        side="BUY" if i % 2 == 0 else "SELL",
        status="filled",
        reason="signal",
        candle_time=1_620_000_000_000 + i * 60_000,
        fill_time=1_620_000_000_000 + i * 60_000,
        model_version="v1",
    )
    return row


def test_trade_log_pages() -> None:
    with TradeLog(":memory:", clock=lambda: 1.0) as log:
        assert log.trades_page() == ([], 0)
        log.record_fills(_fill(i, SYMBOLS[i % 2]) for i in range(7))
        rows, total = log.trades_page(limit=3, offset=3)
        assert total == 7 and [r["id"] for r in rows] == ["o3", "o4", "o5"]
        rows, total = log.trades_page(symbol="BTC/USDT", since=1_620_000_120_000)
        assert total == 3 and [r["id"] for r in rows] == ["o2", "o4", "o6"]
        rows, total = log.trades_page(until=1_620_000_060_000)
        assert total == 2
        for t in range(5):
            log.record_equity("BTC/USDT", 1_620_000_000_000 + t * 60_000, 100.0, float(t))
        rows, total = log.equity_page(symbol="BTC/USDT", limit=2, offset=4)
        assert total == 5 and [r["equity"] for r in rows] == [104.0]


def test_a_non_local_bind_needs_the_token() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(web_host="0.0.0.0")
    assert "web_token" in str(info.value) and "TINHIEU_WEB_TOKEN" in str(info.value)
    with pytest.raises(SettingsError):
        load_settings(web_host="192.168.1.5", web_token="")
    s = load_settings(web_host="0.0.0.0", web_token="s3cret")
    assert s.web_token is not None and "s3cret" not in repr(s) and "s3cret" not in str(s)
    for host in ("127.0.0.1", "::1", "localhost"):
        assert load_settings(web_host=host).web_token is None


def test_openapi_documents_every_api_route() -> None:
    """docs/openapi.yaml and docs/API.md name exactly the routes streams/api.py serves
    (the BASE/QUOTE two-segment forms are documented with the symbol parameter)."""
    import re
    from pathlib import Path

    from streams.app import app

    root = Path(__file__).resolve().parents[2]
    served = {
        r.canonical
        for r in app.web.web_app.router.resources()
        if r.canonical.startswith("/api/v1") and "{base}" not in r.canonical
    }
    spec = (root / "docs" / "openapi.yaml").read_text()
    documented = set(re.findall(r"^  (/api/v1/\S+):$", spec, re.M))
    assert documented == served
    guide = (root / "docs" / "API.md").read_text()
    for path in served:
        assert f"GET {path}" in guide, path
