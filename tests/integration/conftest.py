"""Fixtures shared by the integration modules (the module-scoped ``kafka`` broker is in
tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.procs import Worker, prometheus_binary, wait_for
from tinhieu.kafka_embedded import free_port


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """A test that fails beside a running worker reports the end of that worker's log and
    what each of its asyncio tasks was waiting for (a hang leaves no other trace)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        if isinstance(value, Worker) and value.proc is not None and value.proc.poll() is None:
            report.sections.append((f"worker {name}: log tail", value.tail(4000)))
            report.sections.append((f"worker {name}: asyncio tasks", value.dump_tasks()))


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


@pytest.fixture(scope="module")
def prometheus(worker, tmp_path_factory):
    """A real Prometheus server (Debian's package, installed when missing and possible, else
    the test is skipped) on 127.0.0.1 scraping the module's worker every second."""
    binary = prometheus_binary()
    home: Path = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (home / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: tinhieu\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{worker.web_port}']\n"
    )
    log = open(home / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={home / 'prometheus.yml'}",
         f"--storage.tsdb.path={home / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError((home / "prometheus.log").read_text()[-3000:])
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                    return resp.status == 200
            return False

        wait_for(ready, 30, "prometheus ready")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
