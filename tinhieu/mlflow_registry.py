"""The model registry on MLflow: one registered model per symbol, aliases instead of pointers.

* Every training is an MLflow **run** (experiment ``tinhieu-training``): parameters (model
  sizes, label parameters, each member's hyper-parameters), per-fold metrics (``fold.*``,
  ``step`` = fold number) and pooled ones (classification, calibration and after-fee trading,
  as :mod:`tinhieu.training` computes them), the feature schema, the training data range,
  the members' artifacts, the walk-forward evidence and (after :meth:`attach_files`) the
  report and its chart.
* Each symbol's ensemble is **one registered model**, ``tinhieu-BTCUSDT``; a **version**
  (shown ``v3``) holds every member (rf, svm, lr and whatever else was trained) under
  ``ensemble/<algorithm>/{model.joblib,metadata.json}`` of its run, and records each member's
  sha256 as a version tag (``sha256.<algorithm>``): the registry's database, not the artifact
  store, is what a loaded artifact is checked against.
* Aliases replace the PRODUCTION pointer: ``champion`` is what the workers serve,
  ``challenger`` the candidate a later shadow A/B run would compare with it. Every alias
  change is kept as a version tag ``alias_event.<ms>`` (JSON: alias, version, previous holder,
  actor, OS user, reason) and read back by :meth:`MlflowRegistry.history`.

Without a server: ``sqlite:///<data_dir>/mlflow.db`` and artifacts in ``<data_dir>/mlartifacts``
(``settings.mlflow_uri`` points at a shared server instead). MLflow takes about a second to
import: nothing here imports it before the first call that needs the store, and a reader
whose SQLite file does not exist yet answers "no models" without importing it at all (the
worker polls in an executor anyway, see :class:`tinhieu.signals.ModelCache`).

The file registry (:class:`tinhieu.registry.ModelRegistry`) stays readable as a fallback: a
symbol without a champion in MLflow is served from the file registry's production pointers,
so no model trained before the upgrade is lost; :meth:`MlflowRegistry.migrate` imports them.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.registry import (
    ARTIFACT,
    METADATA,
    LoadedModel,
    ModelRegistry,
    ModelRegistryError,
    RegistrySnapshot,
    _json_default,
    _sha256,
    library_versions,
)
from tinhieu.symbols import canonical, file_form

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
MODEL_PREFIX = "tinhieu-"
EXPERIMENT = "tinhieu-training"
MEMBERS_DIR = "ensemble"
EVENT_PREFIX = "alias_event."
_VERSION = re.compile(r"^v?(\d{1,9})$")
_ALGORITHM = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_METRIC_KEY = re.compile(r"[^0-9A-Za-z_\-. /:]")
_TAG_MAX = 4000
_USERINFO = re.compile(r"(//[^/:@]*:)[^/@]*@")


def model_name(symbol: str) -> str:
    """The registered model of ``symbol``: ``tinhieu-BTCUSDT``."""
    return MODEL_PREFIX + file_form(canonical(symbol))


def version_label(number: int | str) -> str:
    """``3`` -> ``v3`` (how versions are shown, in signals too)."""
    return f"v{int(number)}"


def parse_version(version: str) -> int | None:
    """``v3`` or ``3`` -> 3; None for anything else (a file-registry version id)."""
    m = _VERSION.match(str(version).strip())
    return int(m.group(1)) if m else None


def _import_client() -> Any:
    # No usage reports from trading machines, no progress bars in worker logs; a user who
    # wants either sets the variable explicitly.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    return MlflowClient


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    """Nested dicts of numbers -> ``{"a.b.c": float}`` (lists, strings, None skipped)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, bool):
        out[_METRIC_KEY.sub("_", prefix)] = float(value)
    elif isinstance(value, (int, float)) or type(value).__module__ == "numpy":
        try:
            out[_METRIC_KEY.sub("_", prefix)] = float(value)
        except (TypeError, ValueError):
            pass


def _params(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _params(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif value is None or isinstance(value, (str, int, float, bool)):
        out[_METRIC_KEY.sub("_", prefix)[:250]] = str(value)[:6000]


def _tag(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=_json_default)
    return text if len(text) <= _TAG_MAX else text[: _TAG_MAX - 3] + "..."


class MlflowRegistry:
    """Versioned ensembles per symbol on MLflow, with ``champion``/``challenger`` aliases.

    Parameters
    ----------
    uri : str
        Tracking and registry URI: ``sqlite:///<abs path>/mlflow.db`` or a server's URL.
    artifact_root : Path, optional
        Where a SQLite-backed store keeps artifacts (``<data_dir>/mlartifacts``); a server
        keeps them where it is configured to.
    fallback : ModelRegistry, optional
        The file registry read for symbols that have no champion here.
    clock, user : callables
        Unix seconds and the OS user name (recorded with every alias change).
    """

    def __init__(
        self,
        uri: str,
        *,
        artifact_root: Path | None = None,
        fallback: ModelRegistry | None = None,
        clock: Callable[[], float] = time.time,
        user: Callable[[], str] = getpass.getuser,
    ) -> None:
        self.uri = uri
        self.root = _USERINFO.sub(r"\1***@", uri)  # in messages and /health, no password
        self.artifact_root = artifact_root
        self.fallback = fallback
        self._clock = clock
        self._user = user
        self._client: Any = None
        self._lock = threading.Lock()

    # --- the store ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"MlflowRegistry({self.root!r}, fallback={self.fallback and self.fallback.root})"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of a ``sqlite:///`` URI (None for a server)."""
        if not self.uri.startswith("sqlite:///"):
            return None
        return Path(self.uri[len("sqlite:///"):])

    def _reader(self) -> Any | None:
        """The client, or None when the SQLite store does not exist yet (nothing trained)."""
        if self._client is None:
            path = self.sqlite_path
            if path is not None and not path.exists():
                return None
        return self._writer()

    def _writer(self) -> Any:
        with self._lock:
            if self._client is None:
                path = self.sqlite_path
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                client_cls = _import_client()
                try:
                    self._client = client_cls(tracking_uri=self.uri, registry_uri=self.uri)
                except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds here
                    raise ModelRegistryError(
                        f"cannot open the MLflow store {self.root} ({exc}); check "
                        "TINHIEU_MLFLOW_URI (or TINHIEU_DATA_DIR for the default SQLite store)"
                    ) from exc
            return self._client

    def _registered(self, client: Any, name: str) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise ModelRegistryError(f"MLflow store {self.root}: {exc}") from exc

    def _experiment_id(self, client: Any) -> str:
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return str(exp.experiment_id)
        location = None
        if self.sqlite_path is not None and self.artifact_root is not None:
            root = Path(self.artifact_root).resolve()
            root.mkdir(parents=True, exist_ok=True)
            location = (root / EXPERIMENT).as_uri()
        return str(client.create_experiment(EXPERIMENT, artifact_location=location))

    # --- reading ----------------------------------------------------------------------------
    def aliases(self, symbol: str) -> dict[str, str]:
        """``{"champion": "v2", "challenger": "v3"}`` (only the aliases that are set)."""
        client = self._reader()
        if client is None:
            return {}
        rm = self._registered(client, model_name(symbol))
        if rm is None:
            return {}
        return {a: version_label(v) for a, v in sorted((rm.aliases or {}).items())}

    def snapshot(self, symbol: str) -> RegistrySnapshot:
        """The aliases of ``symbol`` read once, and the members of its champion pinned: an
        ensemble built from it never mixes two versions (one query when nothing changed)."""
        symbol = canonical(symbol)
        try:
            aliases = self.aliases(symbol)
            champion = aliases.get(CHAMPION)
            if champion is not None:
                tags = self._version_tags(symbol, champion)
                members = {a: champion for a in tags.get("members", "").split(",") if a}
                return RegistrySnapshot(self, symbol, f"mlflow:{model_name(symbol)}:{champion}",
                                        aliases, members, self.root)
        except ModelRegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a locked or unreachable store
            raise ModelRegistryError(f"MLflow store {self.root} cannot be read: {exc}") from exc
        if self.fallback is None:
            return RegistrySnapshot(self, symbol, "none", aliases, {}, self.root)
        fp = self.fallback.production_fingerprint(symbol)
        return RegistrySnapshot(self.fallback, symbol, f"file:{fp}", aliases, None,
                                str(self.fallback.root))

    def alias_snapshot(self, symbol: str, alias: str,
                       aliases: Mapping[str, str] | None = None) -> RegistrySnapshot | None:
        """The members of the version ``alias`` points at, pinned (None: alias not set).
        The shadow loads the challenger with it (tinhieu.signals.ModelCache)."""
        symbol = canonical(symbol)
        try:
            aliases = dict(aliases) if aliases is not None else self.aliases(symbol)
            version = aliases.get(alias)
            if version is None:
                return None
            tags = self._version_tags(symbol, version)
        except ModelRegistryError:
            raise
        except Exception as exc:  # noqa: BLE001 - a locked or unreachable store
            raise ModelRegistryError(f"MLflow store {self.root} cannot be read: {exc}") from exc
        members = {a: version for a in tags.get("members", "").split(",") if a}
        return RegistrySnapshot(self, symbol, f"mlflow:{model_name(symbol)}:{version}",
                                aliases, members, self.root)

    def production(self, symbol: str, algorithm: str) -> str | None:
        """The champion's version when it has ``algorithm``; else the file registry's."""
        return self.snapshot(symbol).production(symbol, algorithm)

    def production_fingerprint(self, symbol: str) -> str:
        """Changes whenever what the workers should serve for ``symbol`` changes."""
        return self.snapshot(symbol).fingerprint

    def _version_tags(self, symbol: str, version: str) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        number = parse_version(version)
        if number is None:
            raise ModelRegistryError(f"bad version {version!r} (MLflow versions are v1, v2, ...)")
        client = self._reader()
        if client is None:
            raise ModelRegistryError(
                f"no model {canonical(symbol)} {version} in {self.root} (nothing trained yet)")
        try:
            mv = client.get_model_version(model_name(symbol), str(number))
        except MlflowException:
            raise ModelRegistryError(
                f"no model {canonical(symbol)} {version_label(number)} in {self.root}; list the "
                "versions with: faust -A streams.app models list"
            ) from None
        return dict(mv.tags or {})

    def _download(self, symbol: str, version: str, algorithm: str, dst: Path) -> Path:
        client = self._reader()
        tags = self._version_tags(symbol, version)
        run_id = tags.get("run_id", "")
        try:
            local = client.download_artifacts(run_id, f"{MEMBERS_DIR}/{algorithm}", str(dst))
        except Exception as exc:  # noqa: BLE001 - missing file, unreachable server
            raise ModelRegistryError(
                f"artifact of {canonical(symbol)} {algorithm} {version} is missing ({exc}); "
                "retrain"
            ) from None
        return Path(local)

    def show(self, symbol: str, algorithm: str, version: str) -> dict[str, Any]:
        """One member's metadata (what training recorded), with the version's aliases."""
        if parse_version(version) is None and self.fallback is not None:
            return self.fallback.show(symbol, algorithm, version)
        symbol = canonical(symbol)
        tags = self._version_tags(symbol, version)
        if algorithm not in tags.get("members", "").split(","):
            raise ModelRegistryError(
                f"no model {symbol} {algorithm} {version_label(parse_version(version) or 0)} in "
                f"{self.root}: that version holds {tags.get('members') or 'nothing'}")
        with tempfile.TemporaryDirectory(prefix="tinhieu-show-") as tmp:
            local = self._download(symbol, version, algorithm, Path(tmp))
            try:
                meta = json.loads((local / METADATA).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ModelRegistryError(
                    f"metadata of {symbol} {algorithm} {version} is broken ({exc}); retrain"
                ) from None
        label = version_label(parse_version(version) or 0)
        aliases = self.aliases(symbol)
        return {**meta, "version": label, "sha256": tags.get(f"sha256.{algorithm}"),
                "registered_model": model_name(symbol), "run_id": tags.get("run_id"),
                "aliases": [a for a, v in aliases.items() if v == label],
                "production": aliases.get(CHAMPION) == label}

    def load(self, symbol: str, algorithm: str, version: str | None = None) -> LoadedModel:
        """Load and verify one member; the champion's when ``version`` is None.

        Raises
        ------
        ModelRegistryError
            No champion (and none in the fallback), unknown version or member, missing
            artifact, an artifact whose sha256 is not the one recorded in the registry
            (refused: joblib files are pickles), another feature schema, or an artifact that
            does not unpickle.
        """
        symbol = canonical(symbol)
        if version is None:
            snap = self.snapshot(symbol)
            version = snap.production(symbol, algorithm)
            if version is None:
                raise ModelRegistryError(
                    f"no production {algorithm} model for {symbol} in {self.root} (no champion"
                    + (f", nothing promoted in {self.fallback.root}" if self.fallback else "")
                    + "); train one (faust -A streams.app train) or promote a version "
                    "(faust -A streams.app models promote SYMBOL VERSION)"
                )
            if snap.source is not self:
                return snap.load(symbol, algorithm, version)
        if parse_version(version) is None:
            if self.fallback is None:
                raise ModelRegistryError(f"bad version {version!r} (MLflow versions: v1, v2, ...)")
            return self.fallback.load(symbol, algorithm, version)
        label = version_label(parse_version(version) or 0)
        tags = self._version_tags(symbol, label)
        if algorithm not in tags.get("members", "").split(","):
            raise ModelRegistryError(
                f"no model {symbol} {algorithm} {label} in {self.root}: that version holds "
                f"{tags.get('members') or 'nothing'}")
        if tags.get("feature_schema") != FEATURE_SCHEMA_VERSION:
            raise ModelRegistryError(
                f"{symbol} {algorithm} {label} expects feature schema "
                f"{tags.get('feature_schema')!r} but this code computes "
                f"{FEATURE_SCHEMA_VERSION!r}; retrain the models (faust -A streams.app train)"
            )
        recorded = tags.get(f"sha256.{algorithm}", "")
        with tempfile.TemporaryDirectory(prefix="tinhieu-load-") as tmp:
            local = self._download(symbol, label, algorithm, Path(tmp))
            artifact = local / ARTIFACT
            if not artifact.exists():
                raise ModelRegistryError(
                    f"artifact of {symbol} {algorithm} {label} is missing ({ARTIFACT}); retrain")
            sha = _sha256(artifact)
            if sha != recorded:
                raise ModelRegistryError(
                    f"artifact of {symbol} {algorithm} {label} was altered after it was saved "
                    f"(sha256 {sha[:12]}... != recorded {recorded[:12]}...); refusing to load "
                    "it: retrain, or restore the file from a backup"
                )
            try:
                model = joblib.load(artifact)
                meta = json.loads((local / METADATA).read_text(encoding="utf-8"))
            except Exception as exc:  # unpickling can raise nearly anything
                raise ModelRegistryError(
                    f"artifact of {symbol} {algorithm} {label} does not load ({exc!r}); the "
                    "libraries differ from the ones it was trained with? retrain"
                ) from exc
        meta = {**meta, "version": label, "sha256": recorded, "registered_model":
                model_name(symbol), "run_id": tags.get("run_id")}
        return LoadedModel(symbol, algorithm, label, model, meta)

    def list(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """One row per version and member (oldest first), with ``production`` (champion) and
        ``aliases``; then the file registry's rows not migrated yet (``registry: "file"``)."""
        rows: list[dict[str, Any]] = []
        imported: set[str] = set()  # "algo:version" of file versions already migrated
        client = self._reader()
        if client is not None:
            if symbol is not None:
                names = [model_name(symbol)]
            else:
                names = sorted(rm.name for rm in client.search_registered_models(
                    filter_string=f"name LIKE '{MODEL_PREFIX}%'"))
            for name in names:
                rm = self._registered(client, name)
                if rm is None:
                    continue
                by_version: dict[str, list[str]] = {}
                for alias, v in (rm.aliases or {}).items():
                    by_version.setdefault(version_label(v), []).append(alias)
                versions = client.search_model_versions(filter_string=f"name='{name}'")
                for mv in sorted(versions, key=lambda m: int(m.version)):
                    tags = dict(mv.tags or {})
                    label = version_label(mv.version)
                    imported.update(tags.get("migrated_from", "").split(","))
                    for algo in [a for a in tags.get("members", "").split(",") if a]:
                        rows.append({
                            "registry": "mlflow",
                            "symbol": tags.get("symbol"),
                            "algorithm": algo,
                            "version": label,
                            "created_at": tags.get("created_at", ""),
                            "feature_schema": tags.get("feature_schema"),
                            "train_start_ms": _int(tags.get("train_start_ms")),
                            "train_end_ms": _int(tags.get("train_end_ms")),
                            "sha256": tags.get(f"sha256.{algo}"),
                            "promotion": {"promoted": tags.get("promotion.promoted") == "true",
                                          "reason": tags.get("promotion.reason", "")},
                            "metrics": {"balanced_accuracy":
                                        _float(tags.get(f"balanced_accuracy.{algo}"))},
                            "aliases": sorted(by_version.get(label, [])),
                            "production": CHAMPION in by_version.get(label, []),
                            "run_id": tags.get("run_id"),
                        })
        if self.fallback is not None:  # its pointers serve only symbols without a champion
            served = {r["symbol"] for r in rows if r["production"]}
            rows.extend({**r, "registry": "file",
                         "production": bool(r.get("production")) and r.get("symbol") not in served}
                        for r in self.fallback.list(symbol)
                        if f"{r.get('algorithm')}:{r.get('version')}" not in imported)
        return rows

    def history(self, symbol: str) -> list[dict[str, Any]]:
        """Every alias change of ``symbol``'s versions, oldest first: ``at`` (ISO time),
        ``alias``, ``version``, ``previous`` (the version that held it), ``action`` (set or
        removed), ``actor`` (manual, training, migrate, ...), ``user`` and ``reason``."""
        client = self._reader()
        if client is None or self._registered(client, model_name(symbol)) is None:
            return []
        events = []
        for mv in client.search_model_versions(filter_string=f"name='{model_name(symbol)}'"):
            for key, value in (mv.tags or {}).items():
                if key.startswith(EVENT_PREFIX):
                    try:
                        events.append(json.loads(value))
                    except json.JSONDecodeError:
                        continue
        return sorted(events, key=lambda e: (e.get("at_ms", 0), e.get("seq", 0)))

    # --- writing ----------------------------------------------------------------------------
    def register(
        self,
        symbol: str,
        members: Mapping[str, tuple[Any, Mapping[str, Any]]],
        *,
        promote: bool,
        evidence: Mapping[str, Any] | None = None,
        actor: str = "training",
        reason: str | None = None,
    ) -> dict[str, str]:
        """Log one training as an MLflow run and register its members as one new version.

        Alias rule (the promotion gate decides ``promote``): with ``promote`` the version
        becomes ``champion`` when the symbol has none, else ``challenger`` (the champion keeps
        serving until someone, or later an A/B evaluation, promotes it); without ``promote``
        it is registered with no alias (the reason in its ``promotion.reason`` tag).

        Returns ``{algorithm: "vN"}``.
        """
        symbol = canonical(symbol)
        if not members:
            raise ModelRegistryError(f"{symbol}: nothing to register")
        for algo in members:
            if not _ALGORITHM.match(algo):
                raise ModelRegistryError(f"bad algorithm name {algo!r}")
        evidence = dict(evidence or {})
        client = self._writer()
        now = self._clock()
        created = datetime.fromtimestamp(now, UTC).isoformat()
        first = next(iter(members.values()))[1]
        schema = str(first.get("feature_schema", FEATURE_SCHEMA_VERSION))
        run_tags = {"symbol": symbol, "feature_schema": schema, "tinhieu.kind": actor,
                    "train_start_ms": str(first.get("train_start_ms", "")),
                    "train_end_ms": str(first.get("train_end_ms", "")),
                    "members": ",".join(members)}
        run = client.create_run(self._experiment_id(client),
                                run_name=f"{file_form(symbol)}-{created[:19]}", tags=run_tags)
        run_id = run.info.run_id
        shas: dict[str, str] = {}
        try:
            with tempfile.TemporaryDirectory(prefix="tinhieu-register-") as tmp:
                root = Path(tmp) / MEMBERS_DIR
                for algo, (model, meta) in members.items():
                    d = root / algo
                    d.mkdir(parents=True)
                    source = meta.get("_artifact_path")  # migrate: copy the bytes as they are
                    if source is not None:
                        shutil.copyfile(source, d / ARTIFACT)
                    else:
                        joblib.dump(model, d / ARTIFACT)
                    shas[algo] = _sha256(d / ARTIFACT)
                    record = {"feature_schema": schema,
                              **{k: v for k, v in meta.items() if not k.startswith("_")},
                              "algorithm": algo, "symbol": symbol, "artifact": ARTIFACT,
                              "sha256": shas[algo]}
                    record.setdefault("created_at", created)
                    record.setdefault("libraries", library_versions())
                    (d / METADATA).write_text(
                        json.dumps(record, indent=2, sort_keys=True, default=_json_default),
                        encoding="utf-8")
                (Path(tmp) / "feature_schema.json").write_text(json.dumps(
                    {"feature_schema": schema, "feature_names": first.get("feature_names")}),
                    encoding="utf-8")
                if evidence:
                    (Path(tmp) / "evidence.json").write_text(
                        json.dumps(evidence, indent=1, default=_json_default), encoding="utf-8")
                client.log_artifacts(run_id, tmp)
            self._log_values(client, run_id, members, evidence, shas)
            client.set_terminated(run_id)
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        name = model_name(symbol)
        if self._registered(client, name) is None:
            from mlflow.exceptions import MlflowException

            try:
                client.create_registered_model(
                    name, tags={"symbol": symbol},
                    description=f"tinhieu ensemble of {symbol}; aliases champion (served) "
                    "and challenger (candidate)")
            except MlflowException:  # created meanwhile by another trainer
                pass
        promotion = dict(first.get("promotion") or evidence.get("promotion") or {})
        version_tags = {
            **run_tags, "run_id": run_id, "created_at": created,
            "promotion.promoted": "true" if promotion.get("promoted") else "false",
            "promotion.reason": _tag(promotion.get("reason", "")),
            **{f"sha256.{a}": s for a, s in shas.items()},
        }
        for algo, (_, meta) in members.items():
            wf = (meta.get("metrics") or {}).get("walk_forward") or {}
            if isinstance(wf.get("balanced_accuracy"), (int, float)):
                version_tags[f"balanced_accuracy.{algo}"] = str(float(wf["balanced_accuracy"]))
        extra_tags = evidence.get("version_tags") or {}
        version_tags.update({str(k): _tag(v) for k, v in extra_tags.items()})
        mv = client.create_model_version(
            name, source=f"{run.info.artifact_uri}/{MEMBERS_DIR}", run_id=run_id,
            tags=version_tags, description=_tag(promotion.get("reason") or ""))
        label = version_label(mv.version)
        if promote:
            alias = CHALLENGER if self.aliases(symbol).get(CHAMPION) else CHAMPION
            self.set_alias(symbol, label, alias, actor=actor,
                           reason=reason or str(promotion.get("reason") or "trained"))
        return {algo: label for algo in members}

    def _log_values(self, client: Any, run_id: str,
                    members: Mapping[str, tuple[Any, Mapping[str, Any]]],
                    evidence: Mapping[str, Any], shas: Mapping[str, str]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        params: dict[str, str] = {}
        _params("", evidence.get("params") or {}, params)
        for algo, (_, meta) in members.items():
            _params(algo, meta.get("params") or {}, params)
            if "ensemble_weight" in meta:
                params[f"{algo}.ensemble_weight"] = str(meta["ensemble_weight"])
        first = next(iter(members.values()))[1]
        _params("label", first.get("label") or {}, params)
        stamp = int(self._clock() * 1000)
        metrics: list[Metric] = []
        for fold in evidence.get("folds") or []:
            values: dict[str, float] = {}
            _flatten("fold", {k: fold.get(k) for k in ("metrics", "trading", "weights")}, values)
            metrics += [Metric(k, v, stamp, int(fold.get("fold", 0))) for k, v in values.items()]
        pooled: dict[str, float] = {}
        _flatten("", {k: evidence.get(k) for k in
                      ("overall", "trading", "calibration", "confidence_grid", "signals")
                      if evidence.get(k) is not None}, pooled)
        if "overall" not in evidence:  # a bare save or a migrated version: members' own
            for algo, (_, meta) in members.items():
                _flatten(algo, meta.get("metrics") or {}, pooled)
        metrics += [Metric(k, v, stamp, 0) for k, v in pooled.items()]
        tags = [RunTag(f"sha256.{a}", s) for a, s in shas.items()]
        plist = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(plist), 100):
            client.log_batch(run_id, params=plist[i:i + 100])
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        client.log_batch(run_id, tags=tags)

    def save(self, symbol: str, algorithm: str, model: Any, metadata: dict[str, Any]) -> str:
        """A one-member version, no alias (the file registry's interface); return ``vN``."""
        return self.register(symbol, {algorithm: (model, metadata)}, promote=False,
                             actor="save")[algorithm]

    def attach_files(self, symbol: str, version: str, paths: Iterable[Path],
                     folder: str = "report") -> None:
        """Add files (the training report and its chart) to the run of ``version``."""
        tags = self._version_tags(symbol, version)
        client = self._writer()
        for p in paths:
            if Path(p).exists():
                client.log_artifact(tags["run_id"], str(p), folder)

    def set_alias(self, symbol: str, version: str, alias: str = CHAMPION, *,
                  actor: str = "manual", reason: str = "") -> dict[str, Any]:
        """Point ``alias`` of ``symbol`` at ``version`` and record who, when and why.

        A version that becomes champion stops being the challenger. Refuses a version built
        for another feature schema. Returns the recorded event.
        """
        symbol = canonical(symbol)
        if alias not in ALIASES:
            raise ModelRegistryError(f"unknown alias {alias!r}; use one of {', '.join(ALIASES)}")
        number = parse_version(version)
        if number is None:
            raise ModelRegistryError(
                f"bad version {version!r}: MLflow versions are v1, v2, ... (file-registry "
                "versions are imported by: faust -A streams.app models migrate)")
        label = version_label(number)
        tags = self._version_tags(symbol, label)
        if tags.get("feature_schema") != FEATURE_SCHEMA_VERSION:
            raise ModelRegistryError(
                f"{symbol} {label} was trained on feature schema {tags.get('feature_schema')!r}, "
                f"this code computes {FEATURE_SCHEMA_VERSION!r}; retrain it "
                "(faust -A streams.app train) instead of promoting it")
        client = self._writer()
        name = model_name(symbol)
        before = self.aliases(symbol)
        if alias == CHALLENGER and before.get(CHAMPION) == label:
            raise ModelRegistryError(
                f"{symbol} {label} is the champion already; a challenger is another version")
        event = self._event(symbol, alias, label, before.get(alias), "set", actor, reason)
        client.set_registered_model_alias(name, alias, str(number))
        client.set_model_version_tag(name, str(number), event["key"], _tag(event["json"]))
        if alias == CHAMPION and before.get(CHALLENGER) == label:
            client.delete_registered_model_alias(name, CHALLENGER)
            gone = self._event(symbol, CHALLENGER, label, label, "removed", actor,
                               f"promoted to champion: {reason}".rstrip(": "))
            client.set_model_version_tag(name, str(number), gone["key"], _tag(gone["json"]))
        return json.loads(event["json"])

    def record_decision(self, symbol: str, version: str, decision: str, reason: str, *,
                        actor: str = "shadow") -> dict[str, Any]:
        """The shadow's verdict on a challenger: ``promote`` makes it champion (recorded as
        an alias change by ``actor``), ``keep`` is recorded on the version (``models
        history`` shows both, with the numbers in the reason)."""
        if decision == "promote":
            return self.set_alias(symbol, version, CHAMPION, actor=actor, reason=reason)
        symbol = canonical(symbol)
        number = parse_version(version)
        if number is None:
            raise ModelRegistryError(f"bad version {version!r} (MLflow versions are v1, v2, ...)")
        label = version_label(number)
        event = self._event(symbol, CHALLENGER, label, label, decision, actor, reason)
        self._writer().set_model_version_tag(model_name(symbol), str(number), event["key"],
                                             _tag(event["json"]))
        return json.loads(event["json"])

    def promote(self, symbol: str, version: str, *, alias: str = CHAMPION,
                actor: str = "manual", reason: str = "") -> dict[str, Any]:
        """:meth:`set_alias` (``champion`` by default)."""
        return self.set_alias(symbol, version, alias, actor=actor, reason=reason)

    def _event(self, symbol: str, alias: str, version: str, previous: str | None,
               action: str, actor: str, reason: str) -> dict[str, str]:
        at = self._clock()
        at_ms = int(at * 1000)
        seq = time.monotonic_ns() % 1_000_000
        try:
            user = self._user()
        except Exception:  # noqa: BLE001 - no user name in some containers
            user = "unknown"
        body = {"at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
                "at_ms": at_ms, "seq": seq, "symbol": symbol, "alias": alias,
                "version": version, "previous": previous, "action": action, "actor": actor,
                "user": user, "reason": reason}
        return {"key": f"{EVENT_PREFIX}{at_ms:015d}.{seq:06d}.{alias}.{action}",
                "json": json.dumps(body)}

    # --- migration ----------------------------------------------------------------------------
    def migrate(self, files: ModelRegistry, symbols: Sequence[str] | None = None) -> list[dict]:
        """Import every file-registry version into MLflow, once (re-running skips what is
        already imported).

        The file registry keeps one version per algorithm; a training saved its members a
        few seconds apart with the same training range, so consecutive versions (by creation
        time) with the same range and schema and distinct algorithms become one MLflow
        version, oldest first. The artifacts are copied byte for byte (same sha256), the
        metadata and metrics kept; the group that is in production becomes ``champion``
        (a production set that is no group of its own gets a version of its own).
        """
        rows = [r for r in files.list() if "error" not in r]
        if symbols is not None:
            wanted = {canonical(s) for s in symbols}
            rows = [r for r in rows if r.get("symbol") in wanted]
        done = self._migrated_ids()
        report = []
        for symbol in sorted({str(r["symbol"]) for r in rows}):
            mine = sorted((r for r in rows if r["symbol"] == symbol),
                          key=lambda r: (str(r.get("created_at", "")), str(r["version"])))
            groups: list[list[dict]] = []
            for r in mine:
                key = (r.get("train_start_ms"), r.get("train_end_ms"), r.get("feature_schema"))
                g = groups[-1] if groups else None
                if g is None or r["algorithm"] in {x["algorithm"] for x in g} or key != (
                        g[0].get("train_start_ms"), g[0].get("train_end_ms"),
                        g[0].get("feature_schema")):
                    groups.append([r])
                else:
                    g.append(r)
            prod = {r["algorithm"]: r["version"] for r in mine if r.get("production")}
            if prod and not any({x["algorithm"]: x["version"] for x in g} == prod
                                for g in groups):
                groups.append([r for r in mine if r.get("production")])
            for g in groups:
                ids = ",".join(f"{x['algorithm']}:{x['version']}" for x in g)
                is_prod = bool(prod) and {x["algorithm"]: x["version"] for x in g} == prod
                if ids in done:
                    label = done[ids]
                    status = "already imported"
                else:
                    members = {}
                    for x in g:
                        path = files._version_dir(symbol, x["algorithm"], x["version"]) / ARTIFACT
                        if not path.exists() or _sha256(path) != x.get("sha256"):
                            raise ModelRegistryError(
                                f"{symbol} {x['algorithm']} {x['version']}: the file artifact "
                                "is missing or altered; not importing it (remove that version "
                                "folder or restore it, then run models migrate again)")
                        meta = {k: v for k, v in x.items() if k not in ("production", "registry")}
                        members[x["algorithm"]] = (None, {**meta, "_artifact_path": path,
                                                          "file_version": x["version"]})
                    versions = self.register(
                        symbol, members, promote=False, actor="migrate",
                        evidence={"version_tags": {"migrated_from": ids}})
                    label = next(iter(versions.values()))
                    status = "imported"
                if is_prod and self.aliases(symbol).get(CHAMPION) is None:
                    self.set_alias(symbol, label, CHAMPION, actor="migrate",
                                   reason=f"file registry PRODUCTION ({ids})")
                report.append({"symbol": symbol, "version": label, "members": ids,
                               "champion": is_prod, "status": status})
        return report

    def _migrated_ids(self) -> dict[str, str]:
        client = self._reader()
        if client is None:
            return {}
        out = {}
        for rm in client.search_registered_models(filter_string=f"name LIKE '{MODEL_PREFIX}%'"):
            for mv in client.search_model_versions(filter_string=f"name='{rm.name}'"):
                ids = (mv.tags or {}).get("migrated_from")
                if ids:
                    out[ids] = version_label(mv.version)
        return out


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
