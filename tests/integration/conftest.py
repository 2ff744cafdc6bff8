"""Fixtures shared by the integration modules (the module-scoped ``kafka`` broker is in
tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.procs import Worker


@pytest.fixture(scope="module")
def worker(env, tmp_path_factory):
    """One real ``faust -A streams.app worker`` for the module, with the module's ``env``,
    ready (partitions assigned) before the first test; stopped after the last."""
    w = Worker(env, tmp_path_factory.mktemp("logs") / "worker.log").start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()
