"""The MLflow registry, checked with MLflow's own client against a SQLite store in tmp_path:
one run per training, one registered model per symbol, members and sha256 per version,
champion/challenger aliases with their history, tampered artifacts refused, the file registry
as fallback, and the one-time migration from it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from tinhieu.ensemble import Ensemble
from tinhieu.features import FEATURE_SCHEMA_VERSION, MODEL_FEATURES
from tinhieu.mlflow_registry import MlflowRegistry, model_name
from tinhieu.registry import ModelRegistry, ModelRegistryError, open_registry
from tinhieu.settings import load_settings
from tinhieu.signals import ModelCache

mlflow = pytest.importorskip("mlflow")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def _model(seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(90, len(MODEL_FEATURES)))
    return LogisticRegression(max_iter=200).fit(X, np.array([-1, 0, 1] * 30))


def _meta(promoted: bool = True, start: int = 1_000, end: int = 2_000) -> dict:
    return {
        "feature_schema": FEATURE_SCHEMA_VERSION,
        "feature_names": list(MODEL_FEATURES),
        "train_start_ms": start,
        "train_end_ms": end,
        "metrics": {"walk_forward": {"balanced_accuracy": 0.41, "log_loss": 1.05}},
        "promotion": {"promoted": promoted, "reason": "beats cash" if promoted else "no edge"},
        "ensemble_weight": 1.0,
        "params": {"C": 1.0},
    }


EVIDENCE = {
    "params": {"n_splits": 2, "config": {"rf_trees": 15}},
    "folds": [
        {"fold": 1, "metrics": {"lr": {"log_loss": 1.1, "precision": {"BUY": 0.2}}},
         "trading": {"ensemble": {"total_return_pct": 1.5}}},
        {"fold": 2, "metrics": {"lr": {"log_loss": 1.0, "precision": {"BUY": 0.3}}},
         "trading": {"ensemble": {"total_return_pct": -0.5}}},
    ],
    "overall": {"lr": {"log_loss": 1.05, "balanced_accuracy": 0.41}},
    "trading": {"ensemble": {"total_return_pct": 1.0, "trades": 12.0}},
}


def _members(seed: int, algos=("rf", "svm", "lr"), **meta) -> dict:
    return {a: (_model(seed + i), _meta(**meta)) for i, a in enumerate(algos)}


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables created once (creating them takes seconds)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    return path


def _registry(tmp_path: Path, empty_store: Path | None, fallback: bool = True) -> MlflowRegistry:
    if empty_store is not None:
        shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    files = ModelRegistry(tmp_path / "models", clock=Clock()) if fallback else None
    return MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_root=tmp_path / "mlart",
                          fallback=files, clock=Clock(), user=lambda: "alice")


def _client(reg: MlflowRegistry):
    return mlflow.MlflowClient(tracking_uri=reg.uri, registry_uri=reg.uri)


def _artifact(reg: MlflowRegistry, symbol: str, version: int, algo: str) -> Path:
    client = _client(reg)
    mv = client.get_model_version(model_name(symbol), str(version))
    uri = client.get_run(mv.run_id).info.artifact_uri
    return Path(uri.removeprefix("file://")) / "ensemble" / algo / "model.joblib"


def test_a_training_is_one_run_and_one_version_holding_every_member(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    versions = reg.register("BTC/USDT", _members(1), promote=True, evidence=EVIDENCE)
    assert versions == {"rf": "v1", "svm": "v1", "lr": "v1"}

    client = _client(reg)
    mv = client.get_model_version_by_alias("tinhieu-BTCUSDT", "champion")
    assert str(mv.version) == "1" and mv.tags["members"] == "rf,svm,lr"
    assert mv.tags["feature_schema"] == FEATURE_SCHEMA_VERSION
    assert (mv.tags["train_start_ms"], mv.tags["train_end_ms"]) == ("1000", "2000")
    run = client.get_run(mv.run_id)
    assert run.data.params["n_splits"] == "2" and run.data.params["config.rf_trees"] == "15"
    assert run.data.params["lr.C"] == "1.0"
    assert run.data.metrics["overall.lr.log_loss"] == pytest.approx(1.05)
    assert run.data.metrics["trading.ensemble.trades"] == 12.0
    steps = client.get_metric_history(mv.run_id, "fold.trading.ensemble.total_return_pct")
    assert [(m.step, m.value) for m in steps] == [(1, 1.5), (2, -0.5)]
    assert len(client.get_metric_history(mv.run_id, "fold.metrics.lr.precision.BUY")) == 2
    files = {f.path for f in client.list_artifacts(mv.run_id)}
    assert {"ensemble", "evidence.json", "feature_schema.json"} <= files
    for algo in ("rf", "svm", "lr"):
        sha = hashlib.sha256(_artifact(reg, "BTC/USDT", 1, algo).read_bytes()).hexdigest()
        assert mv.tags[f"sha256.{algo}"] == sha == run.data.tags[f"sha256.{algo}"]

    loaded = reg.load("BTCUSDT", "svm")
    assert (loaded.version, loaded.symbol, loaded.algorithm) == ("v1", "BTC/USDT", "svm")
    np.testing.assert_array_equal(loaded.model.coef_, _model(2).coef_)
    assert loaded.metadata["train_end_ms"] == 2000 and "scikit-learn" in loaded.metadata[
        "libraries"]
    assert reg.show("BTC/USDT", "lr", "1")["aliases"] == ["champion"]
    rows = reg.list("BTC/USDT")
    assert [(r["algorithm"], r["version"], r["production"]) for r in rows] == [
        ("rf", "v1", True), ("svm", "v1", True), ("lr", "v1", True)]


def test_champion_challenger_promotion_and_history(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    reg.register("ETH/USDT", _members(1), promote=True, reason="gate passed")
    fp1 = reg.production_fingerprint("ETH/USDT")
    # A champion exists: a new version that passes the gate waits as challenger.
    assert reg.register("ETH/USDT", _members(5), promote=True)["lr"] == "v2"
    assert reg.aliases("ETH/USDT") == {"champion": "v1", "challenger": "v2"}
    assert reg.production("ETH/USDT", "rf") == "v1"
    assert reg.production_fingerprint("ETH/USDT") == fp1
    # Not through the gate: registered, no alias.
    assert reg.register("ETH/USDT", _members(9), promote=False)["rf"] == "v3"
    assert reg.aliases("ETH/USDT") == {"champion": "v1", "challenger": "v2"}

    reg.promote("ETH/USDT", "v2", reason="challenger won the A/B")
    client = _client(reg)
    assert str(client.get_model_version_by_alias("tinhieu-ETHUSDT", "champion").version) == "2"
    assert "challenger" not in client.get_registered_model("tinhieu-ETHUSDT").aliases
    assert reg.production_fingerprint("ETH/USDT") != fp1
    reg.promote("ETH/USDT", "3", alias="challenger", reason="try it")
    assert reg.aliases("ETH/USDT") == {"champion": "v2", "challenger": "v3"}

    history = [(e["alias"], e["action"], e["version"], e["previous"], e["actor"], e["user"],
                e["reason"]) for e in reg.history("ETH/USDT")]
    assert history == [
        ("champion", "set", "v1", None, "training", "alice", "gate passed"),
        ("challenger", "set", "v2", None, "training", "alice", "beats cash"),
        ("champion", "set", "v2", "v1", "manual", "alice", "challenger won the A/B"),
        ("challenger", "removed", "v2", "v2", "manual", "alice",
         "promoted to champion: challenger won the A/B"),
        ("challenger", "set", "v3", None, "manual", "alice", "try it"),
    ]
    # The events are MLflow version tags: visible in MLflow's own UI and client.
    tags = client.get_model_version("tinhieu-ETHUSDT", "2").tags
    assert sum(k.startswith("alias_event.") for k in tags) == 3

    with pytest.raises(ModelRegistryError, match="champion already"):
        reg.promote("ETH/USDT", "v2", alias="challenger")
    with pytest.raises(ModelRegistryError, match="unknown alias"):
        reg.promote("ETH/USDT", "v1", alias="production")
    with pytest.raises(ModelRegistryError, match="no model ETH/USDT v9"):
        reg.promote("ETH/USDT", "v9")


def test_tampered_artifact_is_refused(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    reg.register("BTC/USDT", _members(1), promote=True)
    path = _artifact(reg, "BTC/USDT", 1, "lr")
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelRegistryError, match="altered after it was saved.*refusing"):
        reg.load("BTC/USDT", "lr")
    # A valid pickle of another model is refused too: the database holds the sha256.
    import joblib

    joblib.dump(_model(42), path)
    with pytest.raises(ModelRegistryError, match="refusing to load"):
        reg.load("BTC/USDT", "lr", "v1")
    assert reg.load("BTC/USDT", "rf").version == "v1"  # the untouched members still load


def test_another_feature_schema_is_refused(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    members = {"lr": (_model(1), {**_meta(), "feature_schema": "f0-old"})}
    reg.register("BTC/USDT", members, promote=False)
    with pytest.raises(ModelRegistryError, match="f0-old.*retrain"):
        reg.promote("BTC/USDT", "v1")
    with pytest.raises(ModelRegistryError, match="f0-old"):
        reg.load("BTC/USDT", "lr", "v1")


def test_file_registry_is_the_fallback_until_a_champion_exists(tmp_path, empty_store):
    reg = _registry(tmp_path, None)  # no MLflow store at all yet
    files = reg.fallback
    v_file = files.save("BTC/USDT", "lr", _model(1), _meta())
    files.promote("BTC/USDT", "lr", v_file)
    snap = reg.snapshot("BTC/USDT")
    assert snap.source is files and snap.fingerprint.startswith("file:")
    assert reg.production("BTC/USDT", "lr") == v_file
    assert reg.load("BTC/USDT", "lr").version == v_file
    assert reg.show("BTC/USDT", "lr", v_file)["version"] == v_file
    assert not (tmp_path / "mlflow.db").exists()  # reading created no store
    assert [r["registry"] for r in reg.list("BTC/USDT")] == ["file"]

    reg.register("BTC/USDT", _members(3, algos=("rf", "lr")), promote=False)
    assert reg.load("BTC/USDT", "lr").version == v_file  # no champion yet: still the file
    reg.promote("BTC/USDT", "v1")
    assert reg.load("BTC/USDT", "lr").version == "v1"
    assert reg.production("BTC/USDT", "svm") is None
    rows = reg.list("BTC/USDT")
    assert [(r["registry"], r["production"]) for r in rows] == [
        ("mlflow", True), ("mlflow", True), ("file", False)]


def test_migrate_imports_every_file_version_once(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    files = ModelRegistry(tmp_path / "old-models", clock=Clock())
    first = {a: files.save("SOL/USDT", a, _model(i), _meta(start=1, end=2))
             for i, a in enumerate(("rf", "svm", "lr"))}
    second = {a: files.save("SOL/USDT", a, _model(10 + i), _meta(start=1, end=3))
              for i, a in enumerate(("rf", "svm", "lr"))}
    for a, v in second.items():
        files.promote("SOL/USDT", a, v)
    report = reg.migrate(files)
    assert [(r["version"], r["champion"], r["status"]) for r in report] == [
        ("v1", False, "imported"), ("v2", True, "imported")]
    assert reg.aliases("SOL/USDT") == {"champion": "v2"}
    for a in ("rf", "svm", "lr"):
        loaded = reg.load("SOL/USDT", a)
        assert loaded.version == "v2" and loaded.metadata["file_version"] == second[a]
        assert loaded.metadata["sha256"] == files.show("SOL/USDT", a, second[a])["sha256"]
        assert loaded.metadata["train_end_ms"] == 3
        np.testing.assert_array_equal(loaded.model.coef_, files.load("SOL/USDT", a,
                                                                      second[a]).model.coef_)
    assert reg.show("SOL/USDT", "rf", "v1")["file_version"] == first["rf"]
    client = _client(reg)
    run = client.get_run(client.get_model_version("tinhieu-SOLUSDT", "2").run_id)
    assert run.data.metrics["rf.walk_forward.balanced_accuracy"] == pytest.approx(0.41)
    assert [e["actor"] for e in reg.history("SOL/USDT")] == ["migrate"]
    upgraded = MlflowRegistry(reg.uri, artifact_root=reg.artifact_root, fallback=files)
    assert {r["registry"] for r in upgraded.list("SOL/USDT")} == {"mlflow"}  # no duplicates
    assert upgraded.load("SOL/USDT", "rf").version == "v2"
    again = reg.migrate(files)
    assert [r["status"] for r in again] == ["already imported"] * 2
    assert len(client.search_model_versions("name='tinhieu-SOLUSDT'")) == 2


def test_workers_follow_the_champion_atomically(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    reg.register("BTC/USDT", _members(1), promote=True)
    reg.register("BTC/USDT", _members(7), promote=True)
    cache = ModelCache(reg, weights=None, min_confidence=0.4)
    ens = cache.refresh("BTC/USDT")
    assert ens.model_version == "rf:v1,svm:v1,lr:v1"
    assert cache.refresh("BTC/USDT") is ens  # nothing changed: nothing reloaded
    assert cache.status()["aliases"]["BTC/USDT"] == {"champion": "v1", "challenger": "v2"}
    reg.promote("BTC/USDT", "v2", reason="test")
    ens2 = cache.refresh("BTC/USDT")
    assert ens2 is not ens and ens2.model_version == "rf:v2,svm:v2,lr:v2"
    assert cache.status()["aliases"]["BTC/USDT"] == {"champion": "v2"}
    row = np.random.default_rng(0).normal(size=len(MODEL_FEATURES))
    direct = Ensemble.from_registry(reg, "BTC/USDT", min_confidence=0.4)
    assert ens2.predict(row).probabilities == direct.predict(row).probabilities


def test_open_registry_picks_mlflow_by_default_and_the_file_registry_on_request(tmp_path):
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    reg = open_registry(settings)
    assert isinstance(reg, MlflowRegistry)
    assert reg.uri == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    assert reg.artifact_root == tmp_path / "mlartifacts"
    assert reg.fallback.root == settings.models_path
    shared = open_registry(load_settings(_env_file=None, data_dir=tmp_path,
                                         mlflow_uri="http://mlflow:5000"))
    assert shared.uri == "http://mlflow:5000" and shared.sqlite_path is None
    secret = open_registry(load_settings(_env_file=None, data_dir=tmp_path,
                                         mlflow_uri="https://bot:s3cret@mlflow.example/"))
    assert secret.root == "https://bot:***@mlflow.example/" and "s3cret" not in repr(secret)
    files = open_registry(load_settings(_env_file=None, data_dir=tmp_path,
                                        model_registry="file"))
    assert isinstance(files, ModelRegistry) and files.root == settings.models_path


def test_a_champion_that_fails_to_load_is_refused_then_retried(tmp_path, empty_store):
    reg = _registry(tmp_path, empty_store)
    reg.register("BTC/USDT", _members(1), promote=True)
    path = _artifact(reg, "BTC/USDT", 1, "rf")
    good = path.read_bytes()
    path.write_bytes(good + b"\0")
    cache = ModelCache(reg, weights=None, min_confidence=0.4)
    assert cache.refresh("BTC/USDT") is None
    assert "altered after it was saved" in cache.status()["missing"]["BTC/USDT"]
    path.write_bytes(good)  # restored: the next poll loads it, no alias change needed
    assert cache.refresh("BTC/USDT").model_version == "rf:v1,svm:v1,lr:v1"
    assert "BTC/USDT" not in cache.status()["missing"]
