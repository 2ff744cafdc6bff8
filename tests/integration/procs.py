"""Real processes for integration tests and benchmarks: Faust workers and CLI commands."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tinhieu.kafka_embedded import free_port

FAUST = str(Path(sys.executable).with_name("faust"))
ROOT = Path(__file__).resolve().parents[2]


def app_env(kafka_url: str, data_dir: Path, app_id: str, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINHIEU_")}
    env.update(
        TINHIEU_BROKER_URL=kafka_url,
        TINHIEU_DATA_DIR=str(data_dir),
        TINHIEU_APP_ID=app_id,
        TINHIEU_INGEST_ENABLED="false",
        TINHIEU_PARTITIONS="4",
        TINHIEU_LOG_LANGUAGE="en",
    )
    env.update({f"TINHIEU_{k.upper()}": str(v) for k, v in extra.items()})
    return env


def run_command(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``faust -A streams.app <args>`` to completion; return its output."""
    proc = subprocess.run(
        [FAUST, "-A", "streams.app", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


class Worker:
    """``faust -A streams.app worker`` as a child process with its own data dir and port."""

    def __init__(self, env: dict[str, str], log_path: Path, web_port: int | None = None) -> None:
        self.web_port = web_port or free_port()
        self.env = dict(env, TINHIEU_WEB_PORT=str(self.web_port))
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> Worker:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [FAUST, "-A", "streams.app", "worker", "-l", "info"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body)
            except ValueError:
                return err.code, body.decode(errors="replace")

    def wait_ready(self, timeout: float = 90.0, topic: str = "market_data") -> dict[str, Any]:
        """Wait until the worker serves /health with partitions of ``topic`` assigned."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}); log:\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                status, last = self.get("/health", timeout=2)
                if (
                    status == 200
                    and not last.get("rebalancing")
                    and any(a.startswith(topic + "[") for a in last.get("assigned", []))
                ):
                    return last
            time.sleep(0.5)
        raise AssertionError(
            f"worker not ready in {timeout} s (last health {last}):\n{self.tail()}"
        )

    def tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def dump_tasks(self, wait_s: float = 3.0) -> str:
        """What every asyncio task of the running worker waits for: ``kill -USR2`` makes it
        log their stacks (``streams.app``); returns the log written since. For the report of
        a test that failed while the worker seemed stuck."""
        if self.proc is None or self.proc.poll() is not None:
            return "(the worker is not running)"
        try:
            size = self.log_path.stat().st_size
            os.kill(self.proc.pid, signal.SIGUSR2)
            time.sleep(wait_s)
            with open(self.log_path, "rb") as f:
                f.seek(size)
                return f.read().decode(errors="replace")[-60_000:]
        except OSError as exc:
            return f"(no task dump: {exc})"

    def stop(self, timeout: float = 40.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_for(
    predicate: Any, timeout: float, what: str, interval: float = 0.5, ready: Any = bool
) -> Any:
    """Call ``predicate`` until ``ready(result)``; return that result."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if ready(last):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def prometheus_binary() -> str:
    """Debian's prometheus, installed here when missing and we may (root); else skip."""
    found = shutil.which("prometheus")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("the 'prometheus' binary is missing and apt-get cannot install it here "
                    "(not root or not Debian): apt-get install prometheus")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:  # a fresh machine may not have the package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    found = shutil.which("prometheus")
    if not found:
        pytest.skip(f"apt-get install prometheus failed: {done.stderr[-500:]}")
    return found


def prometheus_query(url: str, promql: str) -> list[dict]:
    with urllib.request.urlopen(
        f"{url}/api/v1/query?query={urllib.parse.quote(promql)}", timeout=5
    ) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def topic_rows(url: str, topic: str) -> list[dict[str, Any]]:
    """Every JSON object on ``topic`` so far (all partitions), as consumers read them."""
    import asyncio

    from tinhieu.kafka_io import decode_json, read_topic

    return [o for o in (decode_json(v) for _, _, _, v in asyncio.run(read_topic(url, topic)))
            if o]
