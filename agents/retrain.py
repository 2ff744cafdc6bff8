"""Scheduled retraining: every ``retrain_interval_h`` the leader runs ``retrain``.

One retrain at a time across the cluster: the timer runs only on the leader worker, and the
leader starts a run only when its own previous run has finished (an in-process lock; a tick
that finds a run still going is skipped and logged). The run is the ``retrain`` command in a
child process at a lower CPU priority (``nice``): training never holds the worker's event
loop or its GIL, and a crash of the run cannot take the worker down. After a rebalance a new
leader does not start at once: its timer waits a full interval first (the old leader's run,
if any, finishes or dies with that worker). A run of the old leader that is still going when
the new one's first tick comes is the one case two runs overlap; each registers its own
version, so nothing is lost, only CPU. ``retrain_interval_h = 0`` (the default) registers
no timer; ``make run`` sets 24.
"""

from __future__ import annotations

from streams.app import app, settings  # first: the app must exist before topics/tables  # isort: skip

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from streams.views import health_sections
from tinhieu import i18n
from tinhieu.settings import Settings

log = logging.getLogger("tinhieu.retrain")

i18n.register(
    {
        "retrain_start": (
            i18n.TAGS["model"],
            "worker leader: bat dau huan luyen lai tu market_data ({symbols}, {days} ngay)",
            "leader worker: retraining from market_data ({symbols}, {days} days)",
        ),
        "retrain_line": (i18n.TAGS["model"], "retrain: {line}", "retrain: {line}"),
        "retrain_done": (
            i18n.TAGS["model"],
            "huan luyen lai xong sau {seconds:.0f} s (ma thoat {code}); lan sau sau {hours:g} h",
            "retrain finished in {seconds:.0f} s (exit code {code}); next in {hours:g} h",
        ),
        "retrain_busy": (
            i18n.TAGS["model"],
            "lan huan luyen lai truoc van dang chay (tu {since}): bo qua lan nay",
            "the previous retrain is still running (since {since}): skipping this one",
        ),
    }
)


class RetrainRuntime:
    """The scheduled retrain of this worker: at most one child process at a time."""

    def __init__(self, settings: Settings, *, command: list[str] | None = None) -> None:
        self.settings = settings
        faust = str(Path(sys.executable).with_name("faust"))
        nice = ["nice", "-n", "10"] if shutil.which("nice") else []
        self.command = command or [*nice, faust, "-A", "streams.app", "retrain"]
        self.lock = asyncio.Lock()
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.started_at: float | None = None
        self.last: dict[str, Any] | None = None
        self.closed = False

    def start(self) -> bool:
        """Start a run in the background unless one is going; True when started."""
        if self.closed:
            return False
        if self.lock.locked():
            i18n.log(log, logging.WARNING, "retrain_busy",
                     since=time.strftime("%H:%M:%S", time.gmtime(self.started_at or 0)))
            return False
        self.task = asyncio.ensure_future(self.run())
        return True

    async def run(self) -> None:
        """One run: the ``retrain`` command as a child process, its output in this log."""
        async with self.lock:
            self.started_at = time.time()
            i18n.log(log, logging.INFO, "retrain_start", symbols=", ".join(self.settings.symbols),
                     days=self.settings.market_data_retention_days)
            lines: list[str] = []
            code: int | None = None
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    *self.command, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
                assert self.proc.stdout is not None
                async for raw in self.proc.stdout:
                    line = raw.decode(errors="replace").rstrip()
                    if line.startswith(("[MO HINH]", "[DU LIEU]", "[LOI]", "  [")):
                        i18n.log(log, logging.INFO, "retrain_line", line=line.strip())
                        lines.append(line.strip())
                code = await self.proc.wait()
            except Exception as exc:  # could not start the child: log it, try next time
                lines.append(f"[LOI] {type(exc).__name__}: {exc}")
                i18n.log(log, logging.ERROR, "retrain_line", line=lines[-1])
            finally:
                self.proc = None
            seconds = time.time() - self.started_at
            self.last = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "exit_code": code, "seconds": round(seconds, 1),
                         "summary": [x for x in lines if x.startswith("[")][-10:]}
            i18n.log(log, logging.INFO if code == 0 else logging.WARNING, "retrain_done",
                     seconds=seconds, code=code, hours=self.settings.retrain_interval_h)

    async def close(self) -> None:
        """Stop a run in progress (SIGTERM to its process group); later ticks do nothing."""
        self.closed = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def health(self) -> dict[str, Any]:
        """The ``retrain`` section of ``/health``."""
        if self.settings.retrain_interval_h <= 0:
            return {"status": "off", "note": "TINHIEU_RETRAIN_INTERVAL_H=0"}
        out: dict[str, Any] = {"interval_h": self.settings.retrain_interval_h,
                               "last": self.last}
        if self.lock.locked():
            out["status"] = "running"
            out["since"] = self.started_at
        elif not app.is_leader():
            out["status"] = "standby"
            out["note"] = "the leader worker runs the scheduled retrain"
        else:
            out["status"] = "scheduled"
        return out


retrain_runtime = RetrainRuntime(settings)
health_sections["retrain"] = retrain_runtime.health


@app.on_before_shutdown.connect
async def stop_retrain(sender: Any, **kwargs: Any) -> None:
    """A run in progress dies with the worker (the next leader retrains on its schedule)."""
    await retrain_runtime.close()


if settings.retrain_interval_h > 0:

    @app.timer(settings.retrain_interval_h * 3600.0, on_leader=True, name="retrain_models")
    async def retrain_models() -> None:
        """Start the scheduled retrain in a child process (leader only, one at a time)."""
        retrain_runtime.start()
