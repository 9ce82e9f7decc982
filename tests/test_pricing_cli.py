"""The pricing commands as a user runs them: plan, gpus, catalog info/refresh (real HTTP)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from conftest import spotrain

FIXTURE = Path(__file__).parent / "fixtures" / "catalog" / "v8"


@pytest.fixture
def env(tmp_path):
    d = tmp_path / "cat"
    shutil.copytree(FIXTURE, d)
    return {"SPOTRAIN_CATALOG_DIR": str(d), "SPOTRAIN_HOME": str(tmp_path / "home")}


def test_plan_table_and_json(env):
    res = spotrain("plan", "recipes/gpt2-small.yaml", "resources.memory_gb=null", "--top", "3", env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("gpt2-small: 124.4M parameters")
    assert lines[1].split()[:6] == ["#", "cloud", "region", "instance", "accelerator", "purchase"]
    assert len([l for l in lines if l[:2].strip().isdigit()]) == 3
    assert lines[-1].startswith("constraints: accelerators L4:1, A10G:1, A100:1: ")
    js = spotrain(
        "plan", "recipes/gpt2-small.yaml", "resources.memory_gb=null", "--json", "--top", "5", env=env
    )
    doc = json.loads(js.stdout)
    costs = [o["cost"] for o in doc["offers"]]
    assert costs == sorted(costs) and len(costs) == 5
    assert doc["funnel"][0]["constraint"] == "accelerators L4:1, A10G:1, A100:1"
    assert all(0 <= o["savings"] < 1 for o in doc["offers"] if o["spot"])


def test_plan_errors_are_one_line(env):
    res = spotrain("plan", "recipes/gpt2-small.yaml", "resources.accelerators=[A100-80G:1]", env=env)
    assert res.returncode == 2
    assert (
        res.stderr.strip().splitlines()[-1]
        == "error: unknown accelerator 'A100-80G' — did you mean A100-80GB or A100-80GB-SXM or A10G?"
    )
    res = spotrain(
        "plan",
        "recipes/gpt2-small.yaml",
        "resources.clouds=[gcp]",
        "resources.accelerators=[H100:1]",
        env=env,
    )
    assert res.returncode == 2 and "'clouds' removed the last" in res.stderr and "Traceback" not in res.stderr


def test_gpus_overview_and_detail(env):
    res = spotrain("gpus", "--json", env=env)
    rows = {(r["accelerator"], r["count"]): r for r in json.loads(res.stdout)}
    l4 = rows[("L4", 1.0)]
    assert (l4["spot"]["price"], l4["spot"]["cloud"], l4["spot"]["region"]) == (
        0.15 + 0.12,
        "gcp",
        "us-central1",
    )
    assert (l4["on_demand"]["price"], l4["on_demand"]["cloud"]) == (0.45, "vast")
    assert rows[("H100", 1.0)]["spot"] is None
    assert rows[("L4", 1.0)]["memory_gb"] == 24
    detail = spotrain("gpus", "l4", env=env)
    assert detail.returncode == 0
    assert (
        "g6.xlarge" in detail.stdout and "g2-standard-4" in detail.stdout and "1x-L4-8-32768" in detail.stdout
    )
    bad = spotrain("gpus", "L5", env=env)
    assert bad.returncode == 2 and "did you mean L4" in bad.stderr


def test_catalog_info_lists_sources_warnings_and_cache(env):
    res = spotrain("catalog", "info", "--json", env=env)
    doc = json.loads(res.stdout)
    names = [s["name"] for s in doc["sources"]]
    assert names == ["skypilot:aws", "skypilot:gcp", "skypilot:vast"]
    vast = doc["sources"][2]
    assert any(":4: Price 'not-a-price' is not a number" in w for w in vast["warnings"])
    assert doc["offers"] > 0 and doc["cache_bytes"] > 0
    text = spotrain("catalog", "info", env=env)
    assert "skypilot:gcp" in text.stdout and "cache" in text.stdout and "warning:" in text.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_catalog():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FIXTURE))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_refresh_downloads_over_http_and_keeps_copies_when_offline(tmp_path, http_catalog):
    env = {"SPOTRAIN_HOME": str(tmp_path / "home"), "SPOTRAIN_CATALOG_URL": http_catalog}
    res = spotrain("catalog", "refresh", "--clouds", "aws,gcp,azure", "--no-live", env=env)
    assert res.returncode == 0, res.stderr
    assert "aws: 8 offers" in res.stdout and "gcp: " in res.stdout
    assert "azure: cannot fetch" in res.stderr and "no local copy" in res.stderr
    got = tmp_path / "home" / "catalogs" / "v8" / "aws" / "vms.csv"
    assert got.read_bytes() == (FIXTURE / "aws" / "vms.csv").read_bytes()
    info = json.loads(spotrain("catalog", "info", "--json", env=env).stdout)
    assert [s["name"] for s in info["sources"]] == ["skypilot:aws", "skypilot:gcp"]
    down = {**env, "SPOTRAIN_CATALOG_URL": f"http://127.0.0.1:{free_port()}"}
    res = spotrain("catalog", "refresh", "--clouds", "aws", "--no-live", env=down)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "aws: cannot fetch" in res.stderr and "keeping the copy from" in res.stderr
    assert got.exists()


def test_live_aws_spot_prices_from_moto_override_the_catalog(env, moto_endpoint):
    aws = {
        **env,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    res = spotrain(
        "plan",
        "recipes/gpt2-small.yaml",
        "resources.memory_gb=null",
        "resources.clouds=[aws]",
        "--json",
        "--top",
        "50",
        env=aws,
    )
    assert res.returncode == 0, res.stderr
    offers = json.loads(res.stdout)["offers"]
    live = [o for o in offers if o["source"] == "aws-live"]
    # moto answers zone names (us-east-1b/c); they map to the catalog's zone IDs use1-az1/az2
    assert {(o["region"], o["zone"]) for o in live if o["spot"]} >= {("us-east-1", "use1-az1")}
    best = offers[0]
    assert best["spot"] and best["source"] == "aws-live" and best["hourly"] == 0.00001
    assert best["as_of"] < 1.2e9  # the quote's own timestamp, not the catalog's
    info = json.loads(spotrain("catalog", "info", "--json", env=aws).stdout)
    live_src = [s for s in info["sources"] if s["name"] == "aws-live"][0]
    assert live_src["rows"] >= 3  # catalog rows overridden


def test_aws_zone_names_come_from_the_account(moto_endpoint, monkeypatch):
    """Zone ID → this account's zone name, from describe_availability_zones (moto here): what a
    SkyPilot task pins an AWS spot offer to; unreachable → one line, and launch warns instead."""
    from spotrain.launcher.backends.skypilot import aws_zone_names
    from spotrain.pricing.offer import Offer
    from spotrain.pricing.sources import aws_live

    for k, v in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(k, v)
    names = aws_live.zone_names(["us-east-1"])
    assert names and all(k.startswith("use1-az") and v.startswith("us-east-1") for k, v in names.items())
    spot = Offer(
        "aws",
        "us-east-1",
        "use1-az1",
        "g6.xlarge",
        "L4",
        1,
        4,
        16,
        spot=True,
        hourly=0.3,
        on_demand_hourly=0.8,
    )
    od = Offer(
        "aws",
        "us-west-2",
        "usw2-az1",
        "g6.xlarge",
        "L4",
        1,
        4,
        16,
        spot=False,
        hourly=0.8,
        on_demand_hourly=0.8,
    )
    assert aws_zone_names([spot, od]) == (names, [])  # on-demand regions are not even asked
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    got, warnings = aws_zone_names([spot])
    assert got == {} and len(warnings) == 1 and "not pinned to their zone" in warnings[0]
    assert "testing" not in warnings[0]


def test_live_prices_unreachable_warn_and_fall_back(env):
    aws = {
        **env,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    res = spotrain("plan", "recipes/gpt2-small.yaml", "resources.memory_gb=null", "--top", "2", env=aws)
    assert res.returncode == 0 and "Traceback" not in res.stderr
    assert "cannot reach the EC2 API" in res.stderr and "using catalog spot prices" in res.stderr
    assert "testing" not in res.stderr  # never a secret


def test_catalog_info_lists_suspect_prices_and_plan_ranks_them_only_when_trusted(env):
    (Path(env["SPOTRAIN_CATALOG_DIR"]) / "azure").mkdir()
    rows = [
        ("eastus", 0.86, 0.16),
        ("westus", 0.90, 0.17),
        ("northeurope", 0.80, 0.15),
        ("newzealandnorth", 0.0898, 0.0166),
    ]
    (Path(env["SPOTRAIN_CATALOG_DIR"]) / "azure" / "vms.csv").write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Region,AvailabilityZone,Price,SpotPrice\n"
        + "".join(f"Standard_F8ams_v6,,,8,32,{r},,{p},{s}\n" for r, p, s in rows)
    )
    info = spotrain("catalog", "info", env=env)
    assert info.returncode == 0, info.stderr
    assert "2 suspect prices — below 25% of the median" in info.stdout
    line = next(l for l in info.stdout.splitlines() if "newzealandnorth" in l and "spot" in l)
    assert line.split()[-3:] == ["$0.0166", "$0.1600", "3"]
    doc = json.loads(spotrain("catalog", "info", "--json", env=env).stdout)
    assert {(s["region"], s["purchase"]) for s in doc["suspect_prices"]} == {
        ("newzealandnorth", "spot"),
        ("newzealandnorth", "on-demand"),
    }
    args = ("plan", "recipes/tiny-gpt.yaml", "resources.clouds=[azure]", "--no-forecast", "--top", "1")
    plain = spotrain(*args, env=env)
    assert (
        plain.returncode == 0 and "newzealandnorth" not in plain.stdout and "suspect prices" in plain.stdout
    )
    trusted = spotrain(*args, "--trust-outliers", env=env)
    assert "newzealandnorth" in trusted.stdout and "$0.0166!" in trusted.stdout
    assert "!: a suspect price" in trusted.stdout
