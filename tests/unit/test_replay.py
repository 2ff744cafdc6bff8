from pathlib import Path

from tinhieu.data import load_candles, parse_time, symbol_from_path
from tinhieu.replay import load_replay, merge_in_time

SYMS = ("BTC/USDT", "ETH/USDT", "XRP/USDT", "SOL/USDT", "BNB/USDT")


def test_merge_is_time_ordered_and_keeps_each_symbol(data_1m: Path) -> None:
    files = [data_1m / "BTCUSDT_1m.csv.gz", data_1m / "ETHUSDT_1m.csv.gz"]
    start, end = parse_time("2021-04-05"), parse_time("2021-04-05T02:00")
    per_symbol = load_replay(files, SYMS, start, end)
    merged = list(merge_in_time(per_symbol))
    assert len(merged) == 240
    assert [ts for ts in (b.ts for _, b in merged)] == sorted(b.ts for _, b in merged)
    btc = [b for s, b in merged if s == "BTC/USDT"]
    eth = [b for s, b in merged if s == "ETH/USDT"]
    csv_btc = load_candles(files[0], start, end)
    csv_eth = load_candles(files[1], start, end)
    assert [b.close for b in btc] == csv_btc["close"].tolist()
    assert [b.close for b in eth] == csv_eth["close"].tolist()


def test_symbol_from_file_name() -> None:
    assert symbol_from_path("x/BTCUSDT_1m.csv.gz") == "BTC/USDT"
    assert symbol_from_path("ETHUSDT.csv") == "ETH/USDT"
