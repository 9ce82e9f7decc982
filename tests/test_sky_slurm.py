"""Real end to end through SkyPilot onto a single-node Slurm cluster on this machine
(../shared/tools/skypilot-local): launch tiny-gpt, preempt it with `scancel`, recover from the
S3 checkpoint (a real moto server), and finish SUCCEEDED with every attempt in the ledger —
once with spotrain's controller, once delegated to SkyPilot managed jobs. The two jobs run at
the same time, one CPU each on the two-CPU node (as two users of one cluster would), so the module
costs one cold node-env install and one training run of wall time, not two.

Skips without the tools folder or SkyPilot's venv ($SPOTRAIN_SKY_PYTHON). The cluster is
brought up here when it is not already up, and whatever this module started is torn down.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, spotrain

TOOLS = ROOT.parent / "shared" / "tools" / "skypilot-local"
SKY_PY = os.environ.get("SPOTRAIN_SKY_PYTHON", "")
P = Path(os.environ.get("SKYLOCAL_DIR", "/tmp/skylocal"))

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow(450),
    pytest.mark.xdist_group("slurm"),  # one worker: one cluster, one API server
    pytest.mark.skipif(
        not (TOOLS / "up.sh").exists() or not (SKY_PY and Path(SKY_PY).exists()),
        reason="needs ../shared/tools/skypilot-local and SPOTRAIN_SKY_PYTHON (SkyPilot venv)",
    ),
]


# the node is this machine: its uv/pip must take the CPU torch wheel that lies on this disk, or the
# node's env install downloads several GB of CUDA wheels from PyPI. uv (the default installer on a
# node that has it) reads UV_FIND_LINKS; pip reads the same settings this shell's pip does.
def _find_links() -> str | None:
    for cand in [os.environ.get("PIP_FIND_LINKS", "")] + ["/opt/wheels"]:
        for d in cand.split():
            if Path(d).is_dir() and any(Path(d).glob("torch-2.13.0*.whl")):
                return d
    return None


FIND_LINKS = _find_links()
if FIND_LINKS:
    PIP_ENV = f", UV_FIND_LINKS: {FIND_LINKS}"
else:  # no local torch wheel found for uv: fall back to pip with this shell's pip settings
    PIP_ENV = ", SPOTRAIN_NODE_INSTALLER: pip" + "".join(
        f", {k}: null"
        for k in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_CONFIG_FILE")
        if os.environ.get(k)
    )
    if (
        not os.environ.get("PIP_CONFIG_FILE") and (Path.home() / ".config" / "pip" / "pip.conf").exists()
    ):  # the node has another HOME
        PIP_ENV += f", PIP_CONFIG_FILE: {Path.home() / '.config' / 'pip' / 'pip.conf'}"
PRICE = 0.07  # SkyPilot's Slurm pricing in up.sh: $0.05/cpu-h + $0.01/GiB-h, for 1 CPU and 2 GiB
STEPS = 150
# paces the tiny model (~10 ms a step) to ≥ 22 s of training; the scancel lands ~2 s after the
# first checkpoint
STEP_SLEEP = 0.15
OVERRIDES = [
    "resources.clouds=[slurm]",
    f"train.steps={STEPS}",
    "model.layers=2",
    "model.hidden=64",
    "model.heads=2",
    "model.context=64",
    "data.seq_len=64",
    "train.batch_size=8",
    "train.threads=1",
    "train.log_every=10",
    "train.eval_every=1000",
    "train.checkpoints={every_steps: 25, every_minutes: null, keep_last: 2}",
    "eval.max_batches=2",
    "eval.prompts=[]",
    "eval.error_analysis=0",
    f"storage.data_cache={P}/spotrain-data",
    f"env={{AWS_ENDPOINT_URL: null, AWS_DEFAULT_REGION: null, SPOTRAIN_STEP_SLEEP: '{STEP_SLEEP}', "
    f"SPOTRAIN_NODE_ENV: {P}/spotrain-env{PIP_ENV}}}",
    "secrets={AWS_ACCESS_KEY_ID: null, AWS_SECRET_ACCESS_KEY: null}",
]


def _slurm_up(env) -> bool:
    try:
        return (
            subprocess.run([str(P / "bin" / "squeue")], env=env, capture_output=True, timeout=20).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _squeue(env) -> list[tuple[str, str]]:
    out = subprocess.run(
        [str(P / "bin" / "squeue"), "-h", "-o", "%i %j"], env=env, capture_output=True, text=True, timeout=30
    ).stdout
    return [tuple(l.split(maxsplit=1)) for l in out.splitlines() if l.strip()]


@pytest.fixture(scope="module")
def skylocal():
    env = {**os.environ, "SKYLOCAL_DIR": str(P)}
    started = False
    if not _slurm_up(env):
        res = subprocess.run(
            ["bash", str(TOOLS / "up.sh")], env=env, capture_output=True, text=True, timeout=600
        )
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        started = True
    sky_env = {
        "PATH": f"{P}/bin:{os.environ['PATH']}",
        "HOME": f"{P}/home",
        "PYTHONPATH": str(TOOLS),
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
        "DO_NOT_TRACK": "1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SKYPILOT_API_SERVER_LOCAL_PORT": str(free_port()),
    }
    # the session's "no credentials" AWS files must exist, or SkyPilot's AWS check fails every launch
    for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        f = P / "home" / f".empty-{k.lower()}"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
        sky_env[k] = str(f)
    full = {k: v for k, v in {**env, **sky_env}.items() if k != "SKY_RUNTIME_DIR"}
    sky_cli = str(Path(SKY_PY).parent / "sky")
    # one API server for the module (spotrain leaves a server it did not start alone), stopped below
    subprocess.run([sky_cli, "api", "start"], env=full, capture_output=True, timeout=180)
    yield sky_env
    subprocess.run([sky_cli, "api", "stop"], env=full, capture_output=True, timeout=120)
    for jid, name in _squeue({**env, **sky_env}):
        if name.startswith("sp-"):
            subprocess.run([str(P / "bin" / "scancel"), jid], env={**env, **sky_env}, timeout=30)
    if started:
        subprocess.run(["bash", str(TOOLS / "down.sh")], env=env, capture_output=True, timeout=120)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(pred, timeout: float, what: str, poll: float = 2.0):
    end = time.time() + timeout
    while time.time() < end:
        got = pred()
        if got:
            return got
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _events(path: Path) -> list[dict]:
    try:
        return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    except (OSError, ValueError):
        return []


def _run_preempted(controller: str, tmp_path: Path, skylocal: dict, moto_endpoint: str):
    import boto3

    name = f"tiny-{controller}"  # the job's clusters (and their Slurm jobs) are named sp-<name>-...

    bucket = f"ckpt-{controller}-{int(time.time())}"
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=bucket)
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "offers:\n  - {cloud: slurm, region: skylocal, instance: 1CPU--2GB, vcpus: 1, memory_gb: 2, price: "
        "%s}\n" % PRICE
    )
    home = tmp_path / "spotrain-home"
    # each controller poll is two SkyPilot requests (job status, logs), each an SSH round trip and a
    # Python on the node (~1.5 CPU-s here): two jobs polled every 3 s took most of a core
    env = {
        **skylocal,
        **creds,
        "SPOTRAIN_HOME": str(home),
        "SPOTRAIN_SKY_PYTHON": SKY_PY,
        "SPOTRAIN_SKY_POLL": "10",
        "SPOTRAIN_SKY_TAIL_LINES": "20",
    }  # log pulls join short tails to the copy (or fall back to the whole log)
    env.pop("SKY_RUNTIME_DIR", None)
    full_env = {k: v for k, v in {**os.environ, **env}.items() if k != "SKY_RUNTIME_DIR"}
    t0 = time.time()
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotrain",
            "launch",
            str(ROOT / "recipes" / "tiny-gpt.yaml"),
            *OVERRIDES,
            f"name={name}",
            f"storage.checkpoints=s3://{bucket}/tiny",
            f"recovery.controller={controller}",
            "--backend",
            "sky",
            "--prices",
            str(prices),
            "--no-live",
            "-y",
            "--detach",
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    job = int(res.stdout.split("job ", 1)[1].split()[0])
    jdir = home / "jobs" / str(job)
    first = jdir / "attempts" / "1" / "events.jsonl"

    from spotrain.jobs.db import connect
    from spotrain.jobs.store import Store

    db = Store(
        connect(f"sqlite:///{home / 'jobs.db'}")
    )  # read in-process: a CLI call every poll cost a core-minute a run

    def status():
        j = db.job(job)
        return {"status": j.status, "message": j.message}

    try:
        # the first complete checkpoint in S3 (its manifest goes up last), watched in the bucket itself:
        # the attempt's events reach this machine only at the controller's next log pull
        _wait(
            lambda: any(
                o["Key"].endswith("/MANIFEST.json")
                for o in s3.list_objects_v2(Bucket=bucket, Prefix="tiny/").get("Contents", [])
            ),
            600,
            "the first checkpoint in S3",
            poll=1.0,
        )
        t_ckpt = time.time()
        victims = [jid for jid, n in _squeue(full_env) if n.startswith(f"sp-{name}-")]
        assert victims, "no Slurm job to preempt"
        t_cancel = time.time()
        subprocess.run([str(P / "bin" / "scancel"), *victims], env=full_env, check=True, timeout=30)
        final = _wait(
            lambda: (
                (s := status()).get("status")
                in (
                    "SUCCEEDED",
                    "FAILED",
                    "FAILED_SETUP",
                    "FAILED_NO_RESOURCE",
                    "CANCELLED",
                    "STOPPED_BUDGET",
                    "STOPPED_DEADLINE",
                )
                and s
            ),
            900,
            "the job to end",
            poll=5,
        )
    except BaseException:
        spotrain("cancel", str(job), env=env)
        raise
    # (steps logged after the controller's last log pull die with the node: may be nan)
    first_step = min((e["time"] for e in _events(first) if e["event"] == "step"), default=math.nan)
    cost = json.loads(spotrain("cost", str(job), "--json", env=env).stdout)
    events = json.loads(spotrain("events", str(job), "--json", env=env).stdout)
    return {
        "name": name,
        "job": job,
        "final": final,
        "cost": cost,
        "events": events,
        "jdir": jdir,
        "t0": t0,
        "first_step": first_step,
        "t_cancel": t_cancel,
        "t_ckpt": t_ckpt,
        "env": full_env,
        "home": home,
    }


@pytest.fixture(scope="module")
def preempted(skylocal, moto_endpoint, tmp_path_factory):
    """Both controllers' runs, started together; each test checks its own (and re-raises its failure)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        futs = {
            c: pool.submit(_run_preempted, c, tmp_path_factory.mktemp(c), skylocal, moto_endpoint)
            for c in ("spotrain", "skypilot")
        }
        done = {}
        for c, f in futs.items():
            try:
                done[c] = f.result()
            except BaseException as e:  # noqa: BLE001 — handed to the test that owns this run
                done[c] = e
    return done


def _result(preempted: dict, controller: str) -> dict:
    r = preempted[controller]
    if isinstance(r, BaseException):
        raise r
    return r


def _restored_after(jdir: Path, attempt: int, t: float) -> list[dict]:
    return [
        e
        for e in _events(jdir / "attempts" / str(attempt) / "events.jsonl")
        if e["event"] == "checkpoint_restored" and e["time"] > t
    ]


def _ledger_is_whole(cost: dict) -> None:
    assert math.isclose(
        cost["total"], math.fsum(a["cost"] for a in cost["attempts"]), rel_tol=1e-9, abs_tol=1e-12
    )
    assert all(a["cost"] > 0 for a in cost["attempts"])


def test_spotrain_controller_recovers_a_scancelled_attempt(preempted, skylocal):
    r = _result(preempted, "spotrain")
    assert r["final"]["status"] == "SUCCEEDED", r["events"][-5:]
    rows = r["cost"]["attempts"]
    assert [a["end_reason"] for a in rows] == ["lost", "succeeded"]
    restored = _restored_after(r["jdir"], 2, r["t_cancel"])
    assert (
        restored and 25 <= restored[0]["step"] < STEPS
    )  # resumed mid-run from the S3 checkpoint, not from step 0
    _ledger_is_whole(r["cost"])
    # every attempt's cluster was torn down, and SkyPilot's own bill for it is close to ours: we
    # bill from the launch request, SkyPilot from the moment the cluster was up
    for a in rows:
        assert a["sky_cost"] is not None
        assert a["sky_cost"] <= a["cost"] + 1e-9
        assert a["cost"] - a["sky_cost"] <= PRICE * 120 / 3600, a
    assert not [n for _, n in _squeue(r["env"]) if n.startswith(f"sp-{r['name']}-")]
    assert _port_open(
        int(skylocal["SKYPILOT_API_SERVER_LOCAL_PORT"])
    )  # a server spotrain did not start is left running
    first_step = r["first_step"] - r["t0"]
    recovered = restored[0]["time"] - r["t_cancel"]
    print(
        f"\nSKY-SLURM spotrain: launch→first step {first_step:.0f}s, launch→first checkpoint in S3 "
        f"{r['t_ckpt'] - r['t0']:.0f}s, scancel→resumed {recovered:.0f}s, ledger ${r['cost']['total']:.6f} "
        f"vs sky cost-report ${sum(a['sky_cost'] for a in rows):.6f}"
    )


def test_skypilot_managed_job_recoveries_are_imported(preempted):
    r = _result(preempted, "skypilot")
    assert r["final"]["status"] == "SUCCEEDED", r["events"][-5:]
    rows = r["cost"]["attempts"]
    assert len(rows) >= 2 and [a["end_reason"] for a in rows][-1] == "succeeded"
    assert all(a["end_reason"] == "preempted" for a in rows[:-1])
    assert any("SkyPilot recovered the managed job" in e["message"] for e in r["events"])
    log = (r["jdir"] / "attempts" / str(len(rows)) / "attempt.log").read_text(errors="replace")
    resumed = [
        int(l.split("resumed from checkpoint at step ")[1].split()[0])
        for l in log.splitlines()
        if "resumed from checkpoint at step" in l
    ]
    assert resumed and 25 <= resumed[-1] < STEPS
    _ledger_is_whole(r["cost"])
    sky = rows[-1]["sky_cost"]
    assert sky is not None and 0 < sky <= r["cost"]["total"] + 1e-9
    print(f"\nSKY-SLURM skypilot: ledger ${r['cost']['total']:.6f} vs sky cost-report ${sky:.6f}")


def test_every_offer_failing_to_provision_ends_failed_no_resource_listing_them(tmp_path, skylocal):
    prices = (
        tmp_path / "prices.yaml"
    )  # more CPUs than the one Slurm node has: SkyPilot finds no capacity for either
    prices.write_text(
        "offers:\n"
        "  - {cloud: slurm, region: skylocal, instance: 64CPU--8GB, vcpus: 64, memory_gb: 8, price: 3.28}\n"
        "  - {cloud: slurm, region: skylocal, instance: 32CPU--8GB, vcpus: 32, memory_gb: 8, price: 1.68}\n"
    )
    env = {**skylocal, "SPOTRAIN_HOME": str(tmp_path / "home"), "SPOTRAIN_SKY_PYTHON": SKY_PY}
    full_env = {k: v for k, v in {**os.environ, **env}.items() if k != "SKY_RUNTIME_DIR"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "spotrain",
            "launch",
            str(ROOT / "recipes" / "tiny-gpt.yaml"),
            "resources.clouds=[slurm]",
            "--backend",
            "sky",
            "--prices",
            str(prices),
            "--no-live",
            "-y",
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    status = json.loads(spotrain("status", "1", "--json", env=env).stdout)
    assert status["status"] == "FAILED_NO_RESOURCE"
    msg = status["message"]
    assert (
        msg.startswith("every offer failed to provision")
        and "32CPU--8GB" in msg
        and "64CPU--8GB" in msg
        and "no capacity" in msg
    )
    cost = json.loads(spotrain("cost", "1", "--json", env=env).stdout)
    assert [a["end_reason"] for a in cost["attempts"]] == ["lost", "lost"]
    assert not [n for _, n in _squeue(full_env) if n.startswith("sp-tiny-gpt-1x")]
