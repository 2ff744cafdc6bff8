"""Sample wire records for tests (one filled BUY order as the broker agent emits it)."""

from __future__ import annotations

from typing import Any

ORDER_FIELDS: dict[str, Any] = {
    "id": "BTC/USDT-1742540700000-ens-20250321",
    "symbol": "BTC/USDT",
    "side": "BUY",
    "status": "FILLED",
    "price": 84100.0,
    "amount": 0.112958,
    "fee": 9.5,
    "entry_price": 84100.0,
    "stop_loss": 82418.0,
    "take_profit": 88305.0,
    "confidence": 0.724,
    "reason": "signal",
    "candle_time": 1_742_540_700_000,
    "fill_time": 1_742_540_760_000,
    "model_version": "ens-20250321",
    "cash_after": 490.5,
    "pnl": 0.0,
}


def order_fields(**changes: Any) -> dict[str, Any]:
    """``ORDER_FIELDS`` with some fields changed."""
    return {**ORDER_FIELDS, **changes}
