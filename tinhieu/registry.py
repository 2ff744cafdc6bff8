"""Versioned model registry on the file system.

Layout (one folder per symbol, algorithm and version; every version is kept)::

    <root>/BTCUSDT/rf/20210520T101500Z-1a2b3c4d/model.joblib
    <root>/BTCUSDT/rf/20210520T101500Z-1a2b3c4d/metadata.json
    <root>/BTCUSDT/rf/PRODUCTION          # text: the promoted version id

``metadata.json`` records the algorithm, symbol, feature schema, training range, metrics,
library versions and the sha256 of the artifact. :meth:`ModelRegistry.load` refuses an
artifact whose sha256 differs from the recorded one (joblib files are pickles: only files this
registry wrote are ever unpickled), and a model built for another feature schema.

Which registry the code uses is decided in one place, :func:`open_registry`: MLflow
(:mod:`tinhieu.mlflow_registry`, the default) with this file registry read as its fallback,
or this file registry alone (``TINHIEU_MODEL_REGISTRY=file``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.symbols import canonical, file_form

ARTIFACT = "model.joblib"
METADATA = "metadata.json"
POINTER = "PRODUCTION"
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,80}$")
_ALGORITHM = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ModelRegistryError(Exception):
    """A model cannot be saved, found or trusted; the message names it and the fix."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified model and its metadata."""

    symbol: str
    algorithm: str
    version: str
    model: Any
    metadata: dict[str, Any]


@dataclass(frozen=True)
class RegistrySnapshot:
    """What serves one symbol, read once (the answer to one poll of the registry).

    ``fingerprint`` changes whenever what should be served changes; ``pinned`` maps each
    algorithm to the version to load (None: ask ``source`` per algorithm, the file
    registry's pointers). :meth:`tinhieu.ensemble.Ensemble.from_registry` accepts a
    snapshot in place of a registry, so an ensemble never mixes two versions.
    """

    source: Any
    symbol: str
    fingerprint: str
    aliases: Mapping[str, str]
    pinned: Mapping[str, str] | None
    root: Any

    def production(self, symbol: str, algorithm: str) -> str | None:
        if self.pinned is None:
            return self.source.production(symbol, algorithm)
        return self.pinned.get(algorithm)

    def load(self, symbol: str, algorithm: str, version: str | None = None) -> LoadedModel:
        return self.source.load(symbol, algorithm,
                                version or self.production(symbol, algorithm))

    def list(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return self.source.list(symbol)


def open_registry(settings: Any, *, clock: Callable[[], float] = time.time) -> Any:
    """The model registry training, the ``models`` command, the workers and the backtest use.

    ``settings.model_registry``: ``mlflow`` (default): :class:`MlflowRegistry` on
    ``settings.mlflow_tracking_uri`` (``sqlite:///<data_dir>/mlflow.db`` unless
    ``TINHIEU_MLFLOW_URI`` names a server), artifacts in ``<data_dir>/mlartifacts``, with
    the file registry of ``settings.models_path`` read as a fallback; ``file``: the file
    registry alone. Cheap: MLflow is imported on first use, not here.
    """
    files = ModelRegistry(settings.models_path, clock=clock)
    if getattr(settings, "model_registry", "mlflow") == "file":
        return files
    from tinhieu.mlflow_registry import MlflowRegistry

    return MlflowRegistry(settings.mlflow_tracking_uri,
                          artifact_root=settings.data_dir / "mlartifacts",
                          fallback=files, clock=clock)


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickled model loads and predicts the same."""
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class ModelRegistry:
    """Save, promote and load models per symbol and algorithm.

    Parameters
    ----------
    root : pathlib.Path
        Folder of the registry (``settings.models_path``); created on first save.
    clock : callable, optional
        Returns unix seconds; used for version ids and ``created_at`` (tests pass a fixed one).
    """

    def __init__(self, root: Path, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self._clock = clock

    # --- paths ------------------------------------------------------------------------------
    def _symbol_dir(self, symbol: str) -> Path:
        try:
            return self.root / file_form(canonical(symbol))
        except ValueError as exc:
            raise ModelRegistryError(f"not a symbol: {symbol!r} ({exc})") from None

    def _algo_dir(self, symbol: str, algorithm: str) -> Path:
        if not _ALGORITHM.match(algorithm):
            raise ModelRegistryError(f"bad algorithm name {algorithm!r} (use e.g. rf, svm, lr)")
        return self._symbol_dir(symbol) / algorithm

    def _version_dir(self, symbol: str, algorithm: str, version: str) -> Path:
        if not _VERSION.match(version):
            raise ModelRegistryError(f"bad version id {version!r}")
        return self._algo_dir(symbol, algorithm) / version

    # --- writing ----------------------------------------------------------------------------
    def save(self, symbol: str, algorithm: str, model: Any, metadata: dict[str, Any]) -> str:
        """Store a new version; return its id. Nothing existing is overwritten.

        ``metadata`` should hold ``train_start_ms``, ``train_end_ms`` and ``metrics``; the
        registry adds algorithm, symbol, feature schema (unless given), library versions,
        creation time and the artifact's sha256.
        """
        symbol = canonical(symbol)
        algo_dir = self._algo_dir(symbol, algorithm)
        algo_dir.mkdir(parents=True, exist_ok=True)
        now = self._clock()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        tmp_dir = algo_dir / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
        tmp_dir.mkdir()
        try:
            joblib.dump(model, tmp_dir / ARTIFACT)
            sha = _sha256(tmp_dir / ARTIFACT)
            version = f"{stamp}-{sha[:8]}"
            n = 1
            while (algo_dir / version).exists():
                n += 1
                version = f"{stamp}-{sha[:8]}-{n}"
            meta = {
                "feature_schema": FEATURE_SCHEMA_VERSION,
                **metadata,
                "algorithm": algorithm,
                "symbol": symbol,
                "version": version,
                "created_at": datetime.fromtimestamp(now, UTC).isoformat(),
                "libraries": library_versions(),
                "artifact": ARTIFACT,
                "sha256": sha,
            }
            (tmp_dir / METADATA).write_text(
                json.dumps(meta, indent=2, sort_keys=True, default=_json_default),
                encoding="utf-8",
            )
            os.replace(tmp_dir, algo_dir / version)
        except BaseException:
            for p in tmp_dir.glob("*"):
                p.unlink()
            tmp_dir.rmdir()
            raise
        return version

    def register(self, symbol: str, members: Mapping[str, tuple[Any, Mapping[str, Any]]], *,
                 promote: bool, evidence: Mapping[str, Any] | None = None,
                 actor: str = "training", reason: str | None = None) -> dict[str, str]:
        """Save every member (and promote them all when ``promote``); ``{algo: version}``.

        The interface of :meth:`tinhieu.mlflow_registry.MlflowRegistry.register`; this
        registry has no runs and no aliases, so ``evidence``, ``actor`` and ``reason`` are
        not kept (the metadata holds the walk-forward figures and the promotion decision).
        """
        versions = {a: self.save(symbol, a, m, dict(meta)) for a, (m, meta) in members.items()}
        if promote:
            for algo, version in versions.items():
                self.promote(symbol, algo, version)
        return versions

    def attach_files(self, symbol: str, version: str, paths: Iterable[Path],
                     folder: str = "report") -> None:
        """Nothing to do: the report stays where training wrote it."""

    def snapshot(self, symbol: str) -> RegistrySnapshot:
        """The production pointers' fingerprint (see :class:`RegistrySnapshot`)."""
        return RegistrySnapshot(self, canonical(symbol), self.production_fingerprint(symbol),
                                {}, None, self.root)

    def promote(self, symbol: str, algorithm: str, version: str) -> None:
        """Make ``version`` the production model of ``symbol`` + ``algorithm``."""
        meta = self.show(symbol, algorithm, version)  # exists and is readable
        if meta.get("feature_schema") != FEATURE_SCHEMA_VERSION:
            raise ModelRegistryError(
                f"{symbol} {algorithm} {version} was trained on feature schema "
                f"{meta.get('feature_schema')!r}, this code computes {FEATURE_SCHEMA_VERSION!r}; "
                "retrain it (faust -A streams.app train) instead of promoting it"
            )
        _write_atomic(self._algo_dir(symbol, algorithm) / POINTER, version + "\n")

    # --- reading ----------------------------------------------------------------------------
    def production(self, symbol: str, algorithm: str) -> str | None:
        """The promoted version id, or None when nothing is promoted."""
        try:
            text = (self._algo_dir(symbol, algorithm) / POINTER).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return text.strip() or None

    def production_fingerprint(self, symbol: str) -> str:
        """Changes whenever any production pointer of ``symbol`` changes (cheap to poll)."""
        sym_dir = self._symbol_dir(symbol)
        parts = []
        try:
            algos = sorted(p for p in sym_dir.iterdir() if p.is_dir())
        except FileNotFoundError:
            return "none"
        for algo in algos:
            try:
                parts.append(f"{algo.name}={(algo / POINTER).read_text(encoding='utf-8').strip()}")
            except FileNotFoundError:
                continue
        return hashlib.sha1(";".join(parts).encode()).hexdigest()[:16] if parts else "none"

    def show(self, symbol: str, algorithm: str, version: str) -> dict[str, Any]:
        """The metadata of one version.

        Raises
        ------
        ModelRegistryError
            The version does not exist or its metadata is not readable JSON.
        """
        path = self._version_dir(symbol, algorithm, version) / METADATA
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelRegistryError(
                f"no model {symbol} {algorithm} {version} in {self.root} (missing {path}); "
                "list the versions with the registry's list()"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelRegistryError(
                f"metadata of {symbol} {algorithm} {version} is broken ({path}: {exc}); "
                "retrain the model"
            ) from None
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise ModelRegistryError(
                f"metadata of {symbol} {algorithm} {version} is broken ({path}: no sha256); "
                "retrain the model"
            )
        return meta

    def load(self, symbol: str, algorithm: str, version: str | None = None) -> LoadedModel:
        """Load and verify a model; the production one when ``version`` is None.

        Raises
        ------
        ModelRegistryError
            Nothing promoted, version or artifact missing, metadata broken, artifact altered
            (sha256 mismatch), another feature schema, or an artifact that does not unpickle.
        """
        symbol = canonical(symbol)
        if version is None:
            version = self.production(symbol, algorithm)
            if version is None:
                raise ModelRegistryError(
                    f"no production {algorithm} model for {symbol} in {self.root}; train one "
                    "(faust -A streams.app train) or promote a version"
                )
        meta = self.show(symbol, algorithm, version)
        if meta.get("feature_schema") != FEATURE_SCHEMA_VERSION:
            raise ModelRegistryError(
                f"{symbol} {algorithm} {version} expects feature schema "
                f"{meta.get('feature_schema')!r} but this code computes "
                f"{FEATURE_SCHEMA_VERSION!r}; retrain the models (faust -A streams.app train)"
            )
        artifact = self._version_dir(symbol, algorithm, version) / ARTIFACT
        if not artifact.exists():
            raise ModelRegistryError(
                f"artifact of {symbol} {algorithm} {version} is missing ({artifact}); retrain"
            )
        sha = _sha256(artifact)
        if sha != meta["sha256"]:
            raise ModelRegistryError(
                f"artifact of {symbol} {algorithm} {version} was altered after it was saved "
                f"(sha256 {sha[:12]}... != recorded {meta['sha256'][:12]}...); refusing to load "
                "it: retrain or restore the file"
            )
        try:
            model = joblib.load(artifact)
        except Exception as exc:  # unpickling can raise nearly anything
            raise ModelRegistryError(
                f"artifact of {symbol} {algorithm} {version} does not load ({exc!r}); the "
                f"libraries differ from {meta.get('libraries')}? retrain"
            ) from exc
        return LoadedModel(symbol, algorithm, version, model, meta)

    def list(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Metadata of every version (of ``symbol`` when given), with a ``production`` flag.

        Versions whose metadata is unreadable are listed with an ``error`` field.
        """
        if symbol is not None:
            sym_dirs = [self._symbol_dir(symbol)]
        elif self.root.exists():
            sym_dirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        else:
            sym_dirs = []
        rows: list[dict[str, Any]] = []
        for sym_dir in sym_dirs:
            if not sym_dir.exists():
                continue
            for algo_dir in sorted(p for p in sym_dir.iterdir() if p.is_dir()):
                prod = self.production(sym_dir.name, algo_dir.name)
                for vdir in sorted(p for p in algo_dir.iterdir() if p.is_dir()):
                    if vdir.name.startswith("."):
                        continue
                    try:
                        meta = self.show(sym_dir.name, algo_dir.name, vdir.name)
                    except ModelRegistryError as exc:
                        meta = {"algorithm": algo_dir.name, "version": vdir.name,
                                "error": str(exc)}
                    rows.append({**meta, "production": vdir.name == prod})
        return rows


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON: {obj!r}")
