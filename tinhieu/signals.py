"""The models a worker serves: ensembles per symbol, reloaded when the registry changes.

The candle path itself is :func:`tinhieu.pipeline.advance`; this module keeps the loaded
ensembles. Loading a model reads and verifies files (joblib, sha256) and, with MLflow, queries
its store: the worker calls :meth:`ModelCache.refresh` in an executor on a timer, and the
candle agent only reads :meth:`ModelCache.current`, a dictionary lookup, so a slow disk, a
slow MLflow import or a large model never stalls the event loop.

Each poll reads the symbol's aliases once (:meth:`registry.snapshot`); when the champion
changed, the new ensemble is built from that snapshot's versions and swapped in with one
assignment: a candle is predicted by the old or the new version, never by a mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tinhieu import i18n
from tinhieu.ensemble import Ensemble
from tinhieu.features import FEATURE_SCHEMA_VERSION
from tinhieu.registry import ModelRegistry, ModelRegistryError

log = logging.getLogger("tinhieu.signals")

i18n.register(
    {
        "signals.no_model": (
            i18n.TAGS["model"],
            "{symbol}: chưa có mô hình production ({error}); sẽ bắt đầu ra tín hiệu khi có "
            "mô hình được promote, không cần khởi động lại",
            "{symbol}: no production model ({error}); signals start as soon as one is "
            "promoted, no restart needed",
        ),
        "signals.registry_unreadable": (
            i18n.TAGS["model"],
            "{symbol}: không đọc được kho mô hình ({error}); giữ mô hình đang chạy, thử lại sau",
            "{symbol}: the model registry cannot be read ({error}); keeping the loaded "
            "models, retrying",
        ),
        "signals.reloaded": (
            i18n.TAGS["model"],
            "{symbol}: đã nạp mô hình {version}",
            "{symbol}: loaded models {version}",
        ),
    }
)


class ModelCache:
    """Ensembles per symbol, rebuilt when the registry's champion (or production pointers)
    change.

    A symbol without models is reported once (not once per candle) and retried every
    ``check_every_s`` seconds, so a model promoted later is picked up without a restart.
    """

    def __init__(
        self,
        registry: ModelRegistry | Any,
        *,
        weights: Mapping[str, float] | None,
        min_confidence: float,
        check_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.weights = weights
        self.min_confidence = min_confidence
        self.check_every_s = check_every_s
        self._clock = clock
        self._ensembles: dict[str, Ensemble] = {}
        self._fingerprints: dict[str, str] = {}
        self._checked: dict[str, float] = {}
        self._errors: dict[str, str] = {}
        self._aliases: dict[str, dict[str, str]] = {}
        self._unreadable: dict[str, str] = {}
        # the shadow: the challenger's ensemble per symbol, with its version
        self._challengers: dict[str, tuple[str, Ensemble]] = {}
        self._challenger_errors: dict[str, str] = {}

    def current(self, symbol: str) -> Ensemble | None:
        """The ensemble loaded for ``symbol`` (never touches the disk)."""
        return self._ensembles.get(symbol)

    def challenger(self, symbol: str) -> Ensemble | None:
        """The challenger's ensemble for the shadow (None: no challenger), no disk."""
        held = self._challengers.get(symbol)
        return held[1] if held is not None else None

    def challenger_version(self, symbol: str) -> str | None:
        """The registry version (``v3``) of the challenger the shadow runs."""
        held = self._challengers.get(symbol)
        return held[0] if held is not None else None

    def get(self, symbol: str) -> Ensemble | None:
        """:meth:`refresh` when ``check_every_s`` has passed for ``symbol``, then
        :meth:`current` (blocking: for commands and tests, not the event loop)."""
        now = self._clock()
        if now - self._checked.get(symbol, -1e18) < self.check_every_s:
            return self._ensembles.get(symbol)
        self._checked[symbol] = now
        return self.refresh(symbol)

    def refresh_all(self, symbols: Sequence[str]) -> None:
        """:meth:`refresh` every symbol (blocking: run it in an executor)."""
        for symbol in symbols:
            self.refresh(symbol)

    def refresh(self, symbol: str) -> Ensemble | None:
        """Reload ``symbol``'s ensemble if the registry's production pointers changed.

        Blocking (reads model files). The new ensemble replaces the old one in a single
        dictionary assignment, so a reader sees either the old or the new one, never a mix.
        """
        try:
            snapshot = self.registry.snapshot(symbol)
        except ModelRegistryError as exc:  # store unreadable now (locked, server down): keep
            if self._unreadable.get(symbol) != str(exc):  # serving what is loaded, retry
                i18n.log(log, logging.WARNING, "signals.registry_unreadable", symbol=symbol,
                         error=exc)
            self._unreadable[symbol] = str(exc)
            if symbol not in self._ensembles:
                self._errors[symbol] = str(exc)
            return self._ensembles.get(symbol)
        self._unreadable.pop(symbol, None)
        self._aliases[symbol] = dict(snapshot.aliases)
        self._refresh_challenger(symbol, snapshot.aliases)
        fingerprint = snapshot.fingerprint
        if fingerprint == self._fingerprints.get(symbol):
            return self._ensembles.get(symbol)
        self._fingerprints[symbol] = fingerprint
        try:
            ensemble = Ensemble.from_registry(snapshot, symbol, self.weights,
                                              self.min_confidence)
        except Exception as exc:  # a broken model file must not stop the worker
            self._ensembles.pop(symbol, None)
            if snapshot.pinned:  # a champion that did not load (store down?): retry next poll
                self._fingerprints.pop(symbol, None)
            why = self._why_not_promoted(symbol) or str(exc)
            if self._errors.get(symbol) != why:
                i18n.log(log, logging.WARNING, "signals.no_model", symbol=symbol, error=why)
            self._errors[symbol] = why
            return None
        self._errors.pop(symbol, None)
        self._ensembles[symbol] = ensemble
        i18n.log(
            log, logging.INFO, "signals.reloaded", symbol=symbol, version=ensemble.model_version
        )
        return ensemble

    def _refresh_challenger(self, symbol: str, aliases: Mapping[str, str]) -> None:
        """Load the version the ``challenger`` alias points at when it changed (blocking)."""
        version = aliases.get("challenger")
        snapshot_of = getattr(self.registry, "alias_snapshot", None)
        if snapshot_of is None or version is None or version == aliases.get("champion"):
            self._challengers.pop(symbol, None)
            self._challenger_errors.pop(symbol, None)
            return
        held = self._challengers.get(symbol)
        if held is not None and held[0] == version:
            return
        try:
            snapshot = snapshot_of(symbol, "challenger", aliases)
            ensemble = Ensemble.from_registry(snapshot, symbol, self.weights,
                                              self.min_confidence)
        except Exception as exc:  # noqa: BLE001 - the shadow must never stop the champion
            self._challengers.pop(symbol, None)
            if self._challenger_errors.get(symbol) != str(exc):
                log.warning("%s: challenger %s does not load (%s); no shadow", symbol,
                            version, exc)
            self._challenger_errors[symbol] = str(exc)
            return
        self._challenger_errors.pop(symbol, None)
        self._challengers[symbol] = (version, ensemble)
        i18n.log(log, logging.INFO, "signals.reloaded", symbol=symbol,
                 version=f"challenger {ensemble.model_version}")

    def _why_not_promoted(self, symbol: str) -> str | None:
        """When models were trained but none is in production: the promotion gate's reason
        for the newest ones (the symbol trades nothing until a model shows an edge)."""
        try:
            versions = self.registry.list(symbol)
        except Exception:  # noqa: BLE001 - the caller reports the loading error instead
            return None
        if not versions or any(v.get("production") for v in versions):
            return None
        newest = max(versions, key=lambda v: str(v.get("created_at", "")))
        promotion = newest.get("promotion") or {}
        reason = promotion.get("reason") or "never promoted"
        return (
            f"no model in production: the newest models ({newest.get('version')}) were not "
            f"promoted ({reason}); the symbol trades nothing until a model shows an edge "
            "after fees (or one is promoted by hand: models promote)"
        )

    def status(self) -> dict[str, Any]:
        """For /health: loaded model versions, each symbol's champion and challenger
        version (MLflow aliases, as of the last poll), and why a symbol has none."""
        return {
            "loaded": {s: e.model_version for s, e in dict(self._ensembles).items()},
            "aliases": {s: dict(a) for s, a in dict(self._aliases).items()},
            "shadow": {s: e.model_version for s, (_, e) in dict(self._challengers).items()},
            "shadow_missing": dict(self._challenger_errors),
            "missing": dict(self._errors),
            "feature_schema": FEATURE_SCHEMA_VERSION,
            "registry": str(getattr(self.registry, "root", "")),
        }
