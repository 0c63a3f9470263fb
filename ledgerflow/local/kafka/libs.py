"""Finding ``java`` and the Kafka jars.

The broker is the real Apache Kafka, run from its Maven artifacts: a tiny
generated pom pins ``kafka_2.13`` and ``kafka-tools`` and ``mvn
dependency:copy-dependencies`` copies their runtime closure into a cache
folder shared by every data dir. A marker file written last says the copy is
complete, so an interrupted download is redone rather than half used.
With ``KAFKA_HOME`` set (an unpacked Kafka distribution) its ``libs/`` is used
and Maven is not needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ledgerflow.local.kafka.errors import LocalKafkaError, ToolMissingError

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# The Maven artifacts carry slf4j-api but no binding (the distribution tarball
# adds one); without it the broker would log nothing.
LOG4J_VERSION = "2.24.3"
MIN_JAVA = 17

_MARKER = ".ledgerflow-complete"

_POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.ledgerflow</groupId>
  <artifactId>ledgerflow-local-kafka</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka-tools</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
</project>
"""

Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


def cache_root() -> Path:
    """``$LEDGERFLOW_LOCAL_KAFKA_CACHE``, else ``$XDG_CACHE_HOME``/ledgerflow or ~/.cache/ledgerflow."""
    if env := os.environ.get("LEDGERFLOW_LOCAL_KAFKA_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ledgerflow"


def cached_libs_dir() -> Path:
    """Where the Maven-resolved jars live: ``<cache root>/kafka-<version>/libs``."""
    return cache_root() / f"kafka-{KAFKA_VERSION}" / "libs"


def find_java() -> str:
    """Path of the ``java`` to run: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    if java_home := os.environ.get("JAVA_HOME"):
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ToolMissingError(
            f"java not found (PATH or JAVA_HOME): install a Java {MIN_JAVA}+ runtime, "
            "e.g. `apt-get install openjdk-17-jre-headless` or `brew install openjdk@17`"
        )
    return found


def check_java_version(java: str) -> None:
    """Fail clearly when ``java`` is older than Kafka 4's minimum (17)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise ToolMissingError(f"cannot run {java}: {exc}; install a Java {MIN_JAVA}+ runtime") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return  # an unusual banner: let the broker itself complain if it must
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_x" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ToolMissingError(
            f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+: "
            "install a newer JDK/JRE or point JAVA_HOME at one"
        )


def java_tool_command(main_class: str, *args: str, progress: Progress = _no_progress) -> list[str]:
    """argv running one of Kafka's Java tools with the jars of :func:`ensure_libs`."""
    return [find_java(), "-cp", f"{ensure_libs(progress)}/*", main_class, *args]


def _has_kafka_jar(libs: Path) -> bool:
    return any(libs.glob(f"kafka_{SCALA_VERSION}-*.jar"))


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_libs(progress: Progress = _no_progress) -> Path:
    """The folder of Kafka's jars, downloading them with Maven the first time.

    ``KAFKA_HOME`` wins when set. Concurrent callers (two test sessions) are
    serialised by a lock file, and the second finds the marker and returns.
    """
    if kafka_home := os.environ.get("KAFKA_HOME"):
        libs = Path(kafka_home).expanduser() / "libs"
        if not _has_kafka_jar(libs):
            raise LocalKafkaError(
                f"KAFKA_HOME={kafka_home} has no libs/kafka_{SCALA_VERSION}-*.jar: "
                "point it at an unpacked Kafka distribution, or unset it to use Maven"
            )
        return libs
    libs = cached_libs_dir()
    if (libs / _MARKER).is_file():
        return libs
    with _locked(libs.parent / ".lock"):
        if (libs / _MARKER).is_file():
            return libs
        _download(libs, progress)
    return libs


def _download(libs: Path, progress: Progress) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(
            "mvn not found on PATH: install Apache Maven (e.g. `apt-get install maven`) to "
            f"download Kafka {KAFKA_VERSION}, or set KAFKA_HOME to an unpacked Kafka distribution"
        )
    progress(f"Downloading Kafka {KAFKA_VERSION} jars with Maven into {libs}")
    partial = libs.with_name(libs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(libs, ignore_errors=True)
    partial.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="ledgerflow-kafka-pom-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not _has_kafka_jar(partial):
        tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise LocalKafkaError(
            f"Maven could not resolve org.apache.kafka:kafka_{SCALA_VERSION}:{KAFKA_VERSION} "
            f"(exit {result.returncode}): {tail or 'no output'}"
        )
    jars = sorted(p.name for p in partial.glob("*.jar"))
    (partial / _MARKER).write_text("\n".join([KAFKA_VERSION, *jars]) + "\n")
    partial.rename(libs)
    progress(f"Downloaded {len(jars)} jars")
