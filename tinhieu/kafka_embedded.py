"""Embedded Apache Kafka: a single-node KRaft broker on 127.0.0.1 for ``make run`` and tests.

The broker jars (``org.apache.kafka:kafka_2.13``) and their dependencies come from Maven
Central once, through Maven, into a cache (``~/.cache/tinhieu/kafka-<version>``). Each broker
gets its own data directory, formatted for KRaft, and free ports on 127.0.0.1.

Command line::

    python -m tinhieu.kafka_embedded fetch          # download the jars into the cache
    python -m tinhieu.kafka_embedded run [--port N] # run a broker until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
LOG4J_VERSION = "2.24.3"
DEFAULT_CACHE = Path.home() / ".cache" / "tinhieu"
DOCKER_HINT = (
    "Without Java, run Kafka with Docker instead: 'docker compose up -d kafka' and set "
    "TINHIEU_BROKER_URL=kafka://localhost:9092 (see README.md, 'Docker')."
)

log = logging.getLogger(__name__)

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>tinhieu</groupId><artifactId>embedded-kafka</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = {level}
logger.apache.name = org.apache.kafka
logger.apache.level = {level}
"""


class EmbeddedKafkaError(RuntimeError):
    """The embedded broker cannot be fetched, formatted or started; the message says why."""


def _java() -> str:
    java = shutil.which("java")
    if not java:
        raise EmbeddedKafkaError(
            f"Java 17 or newer is needed for the embedded Kafka. {DOCKER_HINT}"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major < 17:
        raise EmbeddedKafkaError(
            f"Java 17 or newer is needed for Kafka {KAFKA_VERSION}; found: "
            f"{out.splitlines()[0] if out else 'unknown'}. {DOCKER_HINT}"
        )
    return java


def libs_dir(cache: Path = DEFAULT_CACHE) -> Path:
    return cache / f"kafka-{KAFKA_VERSION}" / "libs"


def fetch_jars(cache: Path = DEFAULT_CACHE) -> Path:
    """Download the broker jars once (Maven, from Maven Central); return the libs folder.

    Safe to call from several processes at once: a file lock serializes the download.
    """
    target = libs_dir(cache)
    marker = target / ".complete"
    if marker.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return target
        mvn = shutil.which("mvn")
        if not mvn:
            raise EmbeddedKafkaError(
                "Maven ('mvn') is needed once to fetch the Kafka jars from Maven Central "
                f"into {target}. Install Maven (apt-get install maven). {DOCKER_HINT}"
            )
        print(
            f"[KHOI TAO] fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central "
            f"into {target} (once)...",
            file=sys.stderr,
            flush=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(
                _POM.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_VERSION)
            )
            out = Path(tmp) / "libs"
            proc = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={out}",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0 or not any(out.glob("kafka_*.jar")):
                raise EmbeddedKafkaError(
                    "could not fetch the Kafka jars with Maven:\n"
                    + (proc.stdout + proc.stderr)[-2000:]
                    + f"\n{DOCKER_HINT}"
                )
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(out, target)
        marker.write_text(KAFKA_VERSION)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedKafka:
    """A single-node Apache Kafka broker (KRaft) on 127.0.0.1.

    Parameters
    ----------
    data_dir
        Folder for the broker's log segments, config and log file. Kept across restarts.
    port
        Client port; a free one is chosen when ``None``.
    heap_mb
        Java heap of the broker.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        heap_mb: int = 768,
        cache: Path = DEFAULT_CACHE,
        log_level: str = "WARN",
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap_mb = heap_mb
        self.cache = cache
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def _write_config(self) -> Path:
        logs = self.data_dir / "kraft-logs"
        logs.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "8",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
            "log.retention.hours": "-1",
        }
        config = self.data_dir / "server.properties"
        config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.data_dir / "log4j2.properties").write_text(
            _LOG4J2.format(log_file=self.log_file, level=self.log_level)
        )
        return config

    def _java_cmd(self, java: str, main: str, *args: str) -> list[str]:
        return [
            java,
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(256, self.heap_mb)}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{libs_dir(self.cache)}/*",
            main,
            *args,
        ]

    def start(self, timeout_s: float = 90.0) -> EmbeddedKafka:
        """Fetch jars if needed, format storage once, start the broker, wait until it answers."""
        java = _java()
        fetch_jars(self.cache)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Ports are fixed per data dir after the first start (the metadata log names them).
        saved = self.data_dir / "ports"
        if saved.exists():
            self.port, self.controller_port = map(int, saved.read_text().split())
        else:
            saved.write_text(f"{self.port} {self.controller_port}")
        config = self._write_config()
        if not (self.data_dir / "kraft-logs" / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            proc = subprocess.run(
                self._java_cmd(
                    java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)
                ),
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                raise EmbeddedKafkaError(f"formatting KRaft storage failed:\n{proc.stderr[-2000:]}")
        out = open(self.data_dir / "broker.out", "ab")
        self.proc = subprocess.Popen(
            self._java_cmd(java, "kafka.Kafka", str(config)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedKafkaError(
                    f"the Kafka broker exited with code {self.proc.returncode}; see "
                    f"{self.log_file} and {self.data_dir / 'broker.out'}"
                )
            if self._answers():
                return self
            time.sleep(0.3)
        self.stop()
        raise EmbeddedKafkaError(f"the Kafka broker did not answer within {timeout_s:.0f} s")

    def _answers(self) -> bool:
        """True once the broker accepts a connection and serves metadata."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                pass
        except OSError:
            return False
        return "Kafka Server started" in self._tail() or self._metadata_ok()

    def _tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-20000:]
        except OSError:
            return ""

    def _metadata_ok(self) -> bool:
        # A tiny ApiVersions request (v0 header): the broker answers once its socket server runs.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                client = b"tinhieu"
                body = (18).to_bytes(2, "big") + (0).to_bytes(2, "big") + (1).to_bytes(4, "big")
                body += len(client).to_bytes(2, "big") + client
                s.sendall(len(body).to_bytes(4, "big") + body)
                size = int.from_bytes(s.recv(4), "big")
                return size > 0
        except OSError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the broker cleanly (SIGTERM), then forcibly if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the broker (fault injection)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinhieu.kafka_embedded")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download the Kafka jars into the cache")
    run = sub.add_parser("run", help="run a broker until Ctrl-C")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--data-dir", type=Path, default=Path("var/kafka"))
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            print(fetch_jars())
            return 0
        broker = EmbeddedKafka(args.data_dir, args.port if port_is_free(args.port) else None)
        broker.start()
    except EmbeddedKafkaError as exc:
        print(f"[LOI] {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(
        f"[KHOI TAO] Apache Kafka {KAFKA_VERSION} on {broker.bootstrap} "
        f"(data in {broker.data_dir}); Ctrl-C stops it",
        flush=True,
    )
    try:
        while broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
        print("[DUNG] Kafka stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
