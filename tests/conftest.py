"""Shared fixtures. Integration fixtures start real processes: the embedded Apache Kafka
and ``faust -A streams.app worker``; see tests/integration/procs.py."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
DATA_1M = SHARED_DATA / "binance-spot-1m-2021"

# The Faust app reads its settings once at import: give the in-process tests (agent tests)
# a private data directory and never a real broker.
_TMP = Path(tempfile.mkdtemp(prefix="tinhieu-tests-"))
os.environ.setdefault("TINHIEU_DATA_DIR", str(_TMP / "var"))
os.environ.setdefault("TINHIEU_BROKER_URL", "kafka://127.0.0.1:9")
os.environ.setdefault("TINHIEU_INGEST_ENABLED", "false")
os.environ.setdefault("TINHIEU_LOG_LANGUAGE", "en")


@pytest.fixture(scope="session")
def data_1m() -> Path:
    if not DATA_1M.exists():
        pytest.fail(f"shared data not found at {DATA_1M} (see README: Data)")
    return DATA_1M


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory):
    """A real single-node Apache Kafka (KRaft) on 127.0.0.1, one per test module."""
    from tinhieu.kafka_embedded import EmbeddedKafka

    broker = EmbeddedKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
