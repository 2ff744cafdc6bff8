"""Batches of a Faust stream's events, taken without a timer and acked after use.

``batches(stream, n)`` yields everything already waiting in the agent's queue (at most
``n`` events) as soon as the queue runs dry: live, a batch is the one candle that arrived;
during a replay or a catch-up, batches fill up to ``n``. No event waits for a timer.

It replaces ``Stream.take_events``, whose background drainer task was seen to stop for
good, silently, after an exception inside it (the worker kept answering but consumed
nothing more). Here the events are iterated by the agent's own task: an error surfaces in
the agent. The events of a batch are acked after the caller is done with it (at-least-once:
an event is never acked before its effects were sent).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from faust.types import EventT


async def batches(stream: Any, max_size: int) -> AsyncIterator[list[EventT]]:
    """The events of ``stream`` in batches of at most ``max_size`` (see the module doc)."""
    manual = stream.noack()
    queue = stream.channel.queue
    batch: list[EventT] = []
    async for event in manual.events():
        batch.append(event)
        if len(batch) < max_size and not queue.empty():
            continue
        try:
            yield batch
        finally:
            for taken in batch:
                await manual.ack(taken)
            batch = []
