"""Send a message that cannot be processed to ``dead_letters``, with the reason and offset."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from typing import Any

from faust.types import EventT

from models.records import DeadLetter
from streams.topics import DEAD_LETTERS, publish_json
from tinhieu import i18n

log = logging.getLogger("tinhieu.deadletter")
MAX_PAYLOAD = 16_384

i18n.register(
    {
        "dead_letter": (
            i18n.TAGS["skip"],
            "{topic}[{partition}@{offset}] -> dead_letters ({code}): {reason}",
            "{topic}[{partition}@{offset}] -> dead_letters ({code}): {reason}",
        ),
    }
)


def _text(value: Any) -> str:
    if isinstance(value, bytes):  # cut before decoding: a payload may be megabytes
        text = value[: MAX_PAYLOAD * 4].decode("utf-8", "replace")
    elif hasattr(value, "dumps"):
        text = value.dumps().decode("utf-8", "replace")
    else:
        text = str(value)
    return text[:MAX_PAYLOAD]


async def send_dead_letter(event: EventT, code: str, reason: str, agent: str) -> Awaitable[Any]:
    """Send ``event``'s message to ``dead_letters`` with ``code`` and ``reason``.

    Returns the delivery future: a caller that moves its state past the message awaits it
    first, so a crash cannot lose the dead letter while keeping the state.
    """
    msg = event.message
    key = _text(msg.key)[:200] if msg.key is not None else None
    reason = reason[:2000]
    letter = DeadLetter(
        source_topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=key,
        payload=_text(event.value),
        reason=reason,
        code=code,
        agent=agent,
        at=time.time(),
    )
    i18n.log(
        log,
        logging.WARNING,
        "dead_letter",
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        code=code,
        reason=reason,
    )
    # Straight to the producer like signals and orders: the delivery future of Faust's
    # Topic.send was seen never to resolve when awaited (a worker then stopped consuming).
    return await publish_json(DEAD_LETTERS, msg.topic, letter.asdict())
