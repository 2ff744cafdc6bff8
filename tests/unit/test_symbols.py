import pytest

from tinhieu.symbols import DEFAULT_SYMBOLS, UnknownSymbolError, canonical, normalize, url_form


@pytest.mark.parametrize("raw", ["btc", "BTC", "BTCUSDT", "btc/usdt", "BTC-USDT", " btc_usdt "])
def test_every_form_becomes_base_slash_quote(raw: str) -> None:
    assert normalize(raw) == "BTC/USDT"


def test_unknown_symbol_lists_the_supported_ones() -> None:
    with pytest.raises(UnknownSymbolError) as err:
        normalize("DOGE")
    assert "DOGE" in str(err.value)
    for symbol in DEFAULT_SYMBOLS:
        assert symbol in str(err.value)


@pytest.mark.parametrize("raw", ["", "   ", "BTC/USDT/ETH", "bt$c", None, 5])
def test_garbage_is_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        normalize(raw)  # type: ignore[arg-type]


def test_other_quotes_are_kept() -> None:
    assert canonical("ethbtc") == "ETH/BTC"
    assert url_form("BTC/USDT") == "BTC-USDT"
