from pathlib import Path

import pytest

from tinhieu import kafka_embedded
from tinhieu.kafka_embedded import EmbeddedKafka, EmbeddedKafkaError
from tinhieu.kafka_io import bootstrap_servers


def test_without_java_the_error_names_docker_compose(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kafka_embedded.shutil, "which", lambda name: None)
    with pytest.raises(EmbeddedKafkaError) as err:
        EmbeddedKafka(tmp_path).start()
    assert "Java 17" in str(err.value)
    assert "docker compose up" in str(err.value)


def test_without_maven_the_error_says_how_to_fetch(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(kafka_embedded.shutil, "which", lambda name: None)
    with pytest.raises(EmbeddedKafkaError) as err:
        kafka_embedded.fetch_jars(tmp_path / "cache")
    assert "Maven" in str(err.value) and "docker compose" in str(err.value)


def test_bootstrap_servers() -> None:
    assert bootstrap_servers("kafka://a:9092;kafka://b:9093") == ["a:9092", "b:9093"]
    assert bootstrap_servers("kafka://127.0.0.1:9092") == ["127.0.0.1:9092"]
