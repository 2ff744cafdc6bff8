"""Registry: save/load/promote, every version kept, refuses what it should."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.registry import ModelRegistry, ModelRegistryError


class Clock:
    def __init__(self) -> None:
        self.now = 1_621_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _model(seed: int = 0) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3))
    y = np.array([-1, 0, 1] * 20)
    return LogisticRegression(max_iter=200).fit(X, y)


META = {"train_start_ms": 1, "train_end_ms": 2, "metrics": {"accuracy": 0.5}}


@pytest.fixture()
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models", clock=Clock())


def test_save_load_promote_keeps_every_version(registry: ModelRegistry) -> None:
    v1 = registry.save("btcusdt", "lr", _model(1), META)
    v2 = registry.save("BTC/USDT", "lr", _model(2), META)
    assert v1 != v2
    assert registry.production("BTC/USDT", "lr") is None
    with pytest.raises(ModelRegistryError, match="no production lr model for BTC/USDT"):
        registry.load("BTC/USDT", "lr")
    registry.promote("BTC/USDT", "lr", v1)
    loaded = registry.load("BTCUSDT", "lr")
    assert loaded.version == v1
    np.testing.assert_array_equal(loaded.model.coef_, _model(1).coef_)
    meta = loaded.metadata
    assert meta["symbol"] == "BTC/USDT" and meta["algorithm"] == "lr"
    assert meta["feature_schema"] == FEATURE_SCHEMA_VERSION
    assert meta["train_start_ms"] == 1 and meta["train_end_ms"] == 2
    assert len(meta["sha256"]) == 64 and "scikit-learn" in meta["libraries"]
    assert registry.load("BTC/USDT", "lr", v2).version == v2
    listed = registry.list("BTC/USDT")
    assert [r["version"] for r in listed] == sorted([v1, v2])
    assert [r["production"] for r in listed] == [True, False]
    assert registry.show("BTC/USDT", "lr", v2)["version"] == v2
    assert len(registry.list()) == 2


def test_fingerprint_changes_with_production_pointer(registry: ModelRegistry) -> None:
    assert registry.production_fingerprint("ETH/USDT") == "none"
    v1 = registry.save("ETH/USDT", "rf", _model(1), META)
    v2 = registry.save("ETH/USDT", "rf", _model(2), META)
    assert registry.production_fingerprint("ETH/USDT") == "none"
    registry.promote("ETH/USDT", "rf", v1)
    f1 = registry.production_fingerprint("ETH/USDT")
    registry.promote("ETH/USDT", "rf", v2)
    f2 = registry.production_fingerprint("ETH/USDT")
    registry.promote("ETH/USDT", "rf", v1)
    assert f1 != "none" and f2 != f1
    assert registry.production_fingerprint("ETH/USDT") == f1
    assert registry.production_fingerprint("BTC/USDT") == "none"


def _vdir(registry: ModelRegistry, version: str) -> Path:
    return registry.root / "BTCUSDT" / "lr" / version


def test_refuses_altered_artifact(registry: ModelRegistry) -> None:
    v = registry.save("BTC/USDT", "lr", _model(), META)
    artifact = _vdir(registry, v) / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ModelRegistryError, match="altered after it was saved"):
        registry.load("BTC/USDT", "lr", v)


def test_refuses_foreign_artifact_even_if_valid(registry: ModelRegistry, tmp_path: Path) -> None:
    import joblib

    v = registry.save("BTC/USDT", "lr", _model(1), META)
    joblib.dump(_model(2), _vdir(registry, v) / "model.joblib")
    with pytest.raises(ModelRegistryError, match="refusing to load"):
        registry.load("BTC/USDT", "lr", v)


def test_refuses_wrong_feature_schema(registry: ModelRegistry) -> None:
    v = registry.save("BTC/USDT", "lr", _model(), {**META, "feature_schema": "f0-old"})
    with pytest.raises(ModelRegistryError, match="f0-old.*retrain"):
        registry.load("BTC/USDT", "lr", v)
    with pytest.raises(ModelRegistryError, match="f0-old"):
        registry.promote("BTC/USDT", "lr", v)


def test_refuses_missing_files(registry: ModelRegistry) -> None:
    v = registry.save("BTC/USDT", "lr", _model(), META)
    (_vdir(registry, v) / "model.joblib").unlink()
    with pytest.raises(ModelRegistryError, match="artifact .* is missing"):
        registry.load("BTC/USDT", "lr", v)
    with pytest.raises(ModelRegistryError, match="no model BTC/USDT lr nope"):
        registry.load("BTC/USDT", "lr", "nope")


def test_refuses_broken_metadata(registry: ModelRegistry) -> None:
    v = registry.save("BTC/USDT", "lr", _model(), META)
    (_vdir(registry, v) / "metadata.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelRegistryError, match="metadata .* is broken"):
        registry.load("BTC/USDT", "lr", v)
    listed = registry.list("BTC/USDT")
    assert "broken" in listed[0]["error"]
    (_vdir(registry, v) / "metadata.json").write_text(json.dumps({"a": 1}), encoding="utf-8")
    with pytest.raises(ModelRegistryError, match="no sha256"):
        registry.load("BTC/USDT", "lr", v)


def test_refuses_artifact_that_does_not_unpickle(registry: ModelRegistry) -> None:
    v = registry.save("BTC/USDT", "lr", _model(), META)
    vdir = _vdir(registry, v)
    (vdir / "model.joblib").write_bytes(b"garbage")
    meta = json.loads((vdir / "metadata.json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(b"garbage").hexdigest()  # someone "fixed" the checksum
    (vdir / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelRegistryError, match="does not load"):
        registry.load("BTC/USDT", "lr", v)


def test_rejects_bad_names(registry: ModelRegistry) -> None:
    with pytest.raises(ModelRegistryError, match="bad version"):
        registry.load("BTC/USDT", "lr", "../../etc")
    with pytest.raises(ModelRegistryError, match="bad algorithm"):
        registry.save("BTC/USDT", "../x", _model(), META)
