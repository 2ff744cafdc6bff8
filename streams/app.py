"""The one ``faust.App`` of tinhieu.

Run a worker with ``faust -A streams.app worker -l info``; start more of them (with other
``--web-port`` values, or on other machines) to scale out: they share the partitions of
every topic through the consumer group named by ``TINHIEU_APP_ID``.
"""

from __future__ import annotations

import logging
import sys

import faust

from streams.runtime import Runtime, dump_tasks
from tinhieu import i18n
from tinhieu.settings import Settings, SettingsError, get_settings
from tinhieu.webapi import AuthFailures

log = logging.getLogger("tinhieu")


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app from the settings (the only place app options are chosen)."""
    i18n.set_language(settings.log_language)
    data_dir = settings.data_dir.resolve()
    (data_dir / "faust").mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="rocksdb://",
        datadir=str(data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replicas,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 10),
        broker_rebalance_timeout=max(30.0, settings.session_timeout_s * 3),
        web_bind=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.advertised_url,
        consumer_auto_offset_reset="earliest",
        # A topic that appears after the consumer subscribed (a worker on a fresh broker
        # creates it itself) is picked up at the next metadata refresh: 10 s, not 5 min.
        consumer_metadata_max_age_ms=10_000,
        autodiscover=False,
        # A crashed agent is restarted by its supervisor; bad messages never crash it.
        stream_wait_empty=False,
        broker_commit_every=100,
        broker_commit_interval=2.0,
        producer_linger=settings.producer_linger_ms / 1000.0,
    )


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        print(f"[LOI] {exc}", file=sys.stderr)
        raise SystemExit(2) from None


settings = _settings_or_exit()
app = create_app(settings)
runtime = Runtime(settings)
# Wrong tokens per client address, shared by the API guard (streams/api.py) and the
# dashboard's sign-in (streams/dashboard.py).
auth_failures = AuthFailures(settings.web_auth_failures_per_minute)


@app.on_before_shutdown.connect
async def _close_runtime(app: faust.App, **kwargs: object) -> None:
    runtime.close()


@app.task
async def _install_task_dump() -> None:
    """``kill -USR2 <worker pid>`` logs what every task is waiting for (stuck workers)."""
    import asyncio
    import signal

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump_tasks)


# Register the topics, tables, agents, views and commands (each imports what it needs).
from agents import candles as _candles_agent  # noqa: E402,F401
from agents import ingest as _ingest  # noqa: E402,F401
from agents import news as _news  # noqa: E402,F401
from agents import retrain as _retrain  # noqa: E402,F401
from streams import api as _api  # noqa: E402,F401
from streams import commands as _commands  # noqa: E402,F401
from streams import dashboard as _dashboard  # noqa: E402,F401
from streams import metrics as _metrics  # noqa: E402,F401
from streams import news_commands as _news_commands  # noqa: E402,F401
from streams import retrain_commands as _retrain_commands  # noqa: E402,F401
from streams import stream_views as _stream_views  # noqa: E402,F401
from streams import topics  # noqa: E402,F401
from streams import views as _views  # noqa: E402,F401
from tables import windows as _windows_table  # noqa: E402,F401


def main() -> None:
    """Console script ``tinhieu``: the same CLI as ``faust -A streams.app``."""
    app.main()
