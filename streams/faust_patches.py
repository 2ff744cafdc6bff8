"""A fix for faust-streaming 0.15.3 under ``processing_guarantee=exactly_once``.

Faust's aiokafka driver answers ``highwaters()`` inside transactions with
``AIOKafkaConsumer.last_stable_offset(tp)``, which aiokafka only knows after it has fetched
from that partition. Table recovery asks before fetching, gets -1 for every changelog
partition, and stops the worker with ``ConsistencyError: persisted offset ... is higher than
the last offset in that topic (highwater) (... > -1)``: after a restart the workers crash
in a loop (seen in bench/reliability.py and the fault-injection test; docs/RELIABILITY.md).

A transactional consumer runs with ``isolation_level=read_committed``, and aiokafka sends
that level with its ListOffsets request, so ``end_offsets()`` already returns the last
stable offset, fetched or not. The patch makes ``_highwaters`` use it in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka

_PATCHED = "_tinhieu_lso_patch"


def apply() -> None:
    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, _PATCHED, False):
        return

    async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
        consumer = self._ensure_consumer()
        return dict(await consumer.end_offsets(partitions))

    thread_cls._highwaters = _highwaters
    setattr(thread_cls, _PATCHED, True)
