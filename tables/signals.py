"""Tables of the predict step: incremental feature state and the latest signal, per symbol.

Keys are raw UTF-8 symbols (see tables.windows), co-partitioned with ``market_data``.
"""

from __future__ import annotations

from streams.app import app, settings

symbol_to_features = app.Table(
    "symbol_to_features",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    help="Incremental indicator state (FeatureState.to_dict) per symbol.",
)

symbol_to_signal = app.Table(
    "symbol_to_signal",
    default=None,
    partitions=settings.partitions,
    key_type=bytes,
    help="The latest Signal per symbol.",
)
