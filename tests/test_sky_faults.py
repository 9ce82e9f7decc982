"""Bad input and faults on the SkyPilot backend, against the real SkyPilot (its own venv,
$SPOTRAIN_SKY_PYTHON): each ends in one line that says what to do, exit 2, no job, and no
SkyPilot API server left running that spotrain started."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from conftest import ROOT, free_port, spotrain

SKY_PY = os.environ.get("SPOTRAIN_SKY_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not (SKY_PY and Path(SKY_PY).exists()), reason="needs SPOTRAIN_SKY_PYTHON (SkyPilot venv)"
)
TINY = str(ROOT / "recipes" / "tiny-gpt.yaml")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _errors(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.strip() and not l.startswith("warning:")]


def _no_job(env: dict) -> None:
    res = spotrain("status", "--json", env=env)
    assert res.returncode == 0 and json.loads(res.stdout or "[]") == []


@pytest.fixture
def sky_env(tmp_path):
    """A SkyPilot with no cloud set up: its own HOME and API server port."""
    return {
        "HOME": str(tmp_path / "home"),
        "SKYPILOT_API_SERVER_LOCAL_PORT": str(free_port()),
        "SPOTRAIN_HOME": str(tmp_path / "spotrain"),
        "SPOTRAIN_SKY_PYTHON": SKY_PY,
    }


def test_unreachable_api_server_is_one_clear_line(sky_env):
    env = {**sky_env, "SKYPILOT_API_SERVER_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    res = spotrain("launch", TINY, "--backend", "sky", "--no-live", "-y", env=env)
    errs = _errors(res.stderr)
    assert res.returncode == 2 and len(errs) == 1, res.stderr
    assert (
        "cannot reach the SkyPilot API server" in errs[0]
        and "sky api" in errs[0]
        and "Traceback" not in res.stderr
    )
    _no_job(env)


def test_no_cloud_enabled_says_run_sky_check_and_stops_the_server_it_started(sky_env):
    port = int(sky_env["SKYPILOT_API_SERVER_LOCAL_PORT"])
    res = spotrain("launch", TINY, "--backend", "sky", "--no-live", "-y", env=sky_env)
    errs = _errors(res.stderr)
    assert res.returncode == 2 and len(errs) == 1, res.stderr
    assert "no cloud enabled" in errs[0] and "sky check" in errs[0]
    assert not _port_open(port)  # the local API server this launch started is gone again
    _no_job(sky_env)


def test_resources_skypilot_rejects_give_its_reason(sky_env, tmp_path):
    prices = tmp_path / "prices.yaml"  # a region name SkyPilot's infra syntax cannot express
    prices.write_text(
        "offers:\n  - {cloud: aws, region: eu/west/1, instance: m5.large, vcpus: 2, memory_gb: 8, price: "
        "0.096}\n"
    )
    res = spotrain(
        "launch",
        TINY,
        "--backend",
        "sky",
        "--no-live",
        "-y",
        "--prices",
        str(prices),
        "resources.clouds=[aws]",
        "resources.regions=[eu/west/1]",
        env=sky_env,
    )
    errs = _errors(res.stderr)
    assert res.returncode == 2 and len(errs) == 1, res.stderr
    assert (
        "SkyPilot rejected the task" in errs[0]
        and "aws/eu/west/1" in errs[0]
        and "Traceback" not in res.stderr
    )
    _no_job(sky_env)
