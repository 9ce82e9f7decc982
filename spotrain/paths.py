"""Where spotrain keeps things, read from the environment at call time (never at import):
``SPOTRAIN_HOME`` (jobs database, catalogs, locks, job folders; default ``~/.spotrain``),
``SPOTRAIN_DB`` (any SQLAlchemy URL for the job store) and ``SPOTRAIN_CACHE`` (prepared data)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("SPOTRAIN_HOME", Path.home() / ".spotrain")).expanduser()


def db_url() -> str:
    """The job store: ``SPOTRAIN_DB``, or SQLite in ``home()`` (created on first use)."""
    if os.environ.get("SPOTRAIN_DB"):
        return os.environ["SPOTRAIN_DB"]
    h = home()
    h.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{h / 'jobs.db'}"


def data_cache() -> Path:
    """Prepared-data cache root: ``$SPOTRAIN_CACHE/data`` or ``~/.cache/spotrain/data``."""
    env = os.environ.get("SPOTRAIN_CACHE")
    return Path(env).expanduser() / "data" if env else Path.home() / ".cache" / "spotrain" / "data"


def heartbeat_stale_s() -> float:
    """Seconds without a controller heartbeat before another may adopt the job
    (``SPOTRAIN_HEARTBEAT_STALE``)."""
    return float(os.environ.get("SPOTRAIN_HEARTBEAT_STALE", "15"))
