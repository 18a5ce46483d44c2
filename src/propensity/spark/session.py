"""The SparkSession a command runs on: the caller's, a master given by name, or Spark Connect."""

from __future__ import annotations

import os
import shutil
import sys
import warnings

from propensity.core.errors import ConfigError

__all__ = ["require_spark", "spark_session"]


def _java_found() -> bool:
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or bool(home and os.path.exists(os.path.join(home, "bin", "java")))


def require_spark(master: str | None = None) -> None:
    """Raise :class:`ConfigError` (one line) when no session can start: pyspark missing, or no Java for a classic one.

    Spark Connect (``SPARK_REMOTE`` without ``master``) and an active session need no local Java.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError("--engine spark needs pyspark, which is not installed: pip install 'propensity[spark]' "
                          "(and Java 17+)") from None
    if master is None and os.environ.get("SPARK_REMOTE"):
        try:
            import grpc  # noqa: F401  (Spark Connect's client needs pyspark's connect extra)
        except ImportError:
            raise ConfigError(f"SPARK_REMOTE={os.environ['SPARK_REMOTE']}: Spark Connect needs its client libraries, "
                              "which are not installed: pip install 'pyspark[connect]'") from None
        return
    if master is None and SparkSession.getActiveSession() is not None:
        return
    if not _java_found():
        raise ConfigError("--engine spark needs a Java runtime (17+) to start Spark: none on PATH and JAVA_HOME is "
                          "not set; install one, or use Spark Connect (SPARK_REMOTE=sc://host)")


def spark_session(master: str | None = None):
    """The session to run on.

    ``master`` (``--spark-master``: ``local[2]``, ``spark://host:7077``, ``yarn``, ...) starts
    or reuses a classic session on it; without it, ``SPARK_REMOTE`` (``sc://host``)
    connects through Spark Connect; without either, the caller's active session is
    used, else a ``local[*]`` one. Times are read and shown in UTC, as everywhere in
    the package: the session's ``spark.sql.session.timeZone`` is set to UTC, the
    caller's too. On a local master the Python workers run this interpreter, so
    they import the same ``propensity``.
    """
    require_spark(master)
    from pyspark.sql import SparkSession

    # PySpark's notice that it "does not yet fully support pandas >= 3.0.0": the parity tests are the check here.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

    if master is None and not os.environ.get("SPARK_REMOTE"):
        active = SparkSession.getActiveSession()
        if active is not None:
            # collected and pandas timestamps follow the session's zone: the package reads and writes UTC
            active.conf.set("spark.sql.session.timeZone", "UTC")
            return active
    builder = SparkSession.builder.appName("propensity").config("spark.sql.session.timeZone", "UTC")
    if master is None and os.environ.get("SPARK_REMOTE"):
        return builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
    master = master or "local[*]"
    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (builder.config("spark.ui.enabled", "false").config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1").config("spark.sql.shuffle.partitions", "8")
                   .config("spark.ui.showConsoleProgress", "false"))
    return builder.master(master).getOrCreate()
