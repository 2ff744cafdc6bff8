"""Typed records for every message on a topic (faust.Record)."""

from models.records import Candle, DeadLetter, ModelVote, Order, Signal

__all__ = ["Candle", "DeadLetter", "ModelVote", "Order", "Signal"]
