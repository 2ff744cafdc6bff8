"""Small Kafka helpers outside Faust: topic creation, producing candles, reading a topic's tail.

Used by replay, the ingest's restart logic, tests and benchmarks. Keys are the normalized
symbol as raw UTF-8, values JSON: the same bytes Faust producers write.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner


def bootstrap_servers(broker_url: str) -> list[str]:
    """``kafka://h1:9092;kafka://h2:9092`` (or ``kafka://h1:9092;h2:9092``) -> host:port list."""
    servers = []
    for part in broker_url.split(";"):
        part = part.strip()
        for prefix in ("kafka://", "aiokafka://"):
            if part.startswith(prefix):
                part = part[len(prefix) :]
        if part:
            servers.append(part.rstrip("/"))
    if not servers:
        raise ValueError(f"no Kafka server in broker_url {broker_url!r} (TINHIEU_BROKER_URL)")
    return servers


async def ensure_topics(
    broker_url: str,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the topics that do not exist yet (existing ones are left as they are);
    ``configs`` maps a topic to its topic configs (e.g. ``{"retention.ms": "..."}``)."""
    configs = configs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name=n, num_partitions=partitions, replication_factor=replication,
                     topic_configs=dict(configs.get(n, {})))
            for n in names
            if n not in existing
        ]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


async def topic_configs(broker_url: str, topic: str) -> dict[str, str] | None:
    """The topic's configs as the broker reports them (``retention.ms``, ...); None when
    the topic does not exist."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(broker_url))
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            return None
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    out: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:  # (error, message, type, name, entries)
            if resource[0]:
                raise RuntimeError(f"describe configs of {topic}: error {resource[0]} "
                                   f"{resource[1]}")
            for entry in resource[4]:
                out[entry[0]] = entry[1]
    return out


def make_producer(broker_url: str, **kwargs: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(broker_url),
        linger_ms=kwargs.pop("linger_ms", 10),
        max_batch_size=kwargs.pop("max_batch_size", 256 * 1024),
        acks="all",
        enable_idempotence=True,
        **kwargs,
    )


async def read_topic(
    broker_url: str,
    topic: str,
    *,
    tail: int | None = None,
    timeout_s: float = 10.0,
    key: bytes | None = None,
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """All messages of ``topic`` (or the last ``tail`` per partition) as
    ``(partition, offset, key, value)``, read up to the end offsets seen at the start.

    With ``key``: only the partition the producers' default partitioner gives that key
    (where every producer of tinhieu writes it) and only the messages with that key."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker_url),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # only what committed transactions wrote
    )
    await consumer.start()
    out: list[tuple[int, int, bytes | None, bytes | None]] = []
    try:
        if topic not in await consumer.topics():
            return out
        consumer._client.add_topic(topic)  # ask the cluster for this topic's partitions
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            return out
        if key is not None:
            parts = {DefaultPartitioner()(key, sorted(parts), sorted(parts))}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > begins[tp]}
        for tp in tps:
            start = begins[tp] if tail is None else max(begins[tp], ends[tp] - tail)
            consumer.seek(tp, start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while pending and loop.time() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset < ends[tp] and (key is None or rec.key == key):
                        out.append((tp.partition, rec.offset, rec.key, rec.value))
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


def decode_json(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        obj = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None
