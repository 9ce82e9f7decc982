"""The recipe → SkyPilot task compiler, `launch --backend sky --dry-run`, and SkyPilot's own
loader on every shipped recipe (through $SPOTRAIN_SKY_PYTHON; that part skips without it)."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from spotrain.pricing.offer import Offer
from spotrain.launcher.compiler import (
    EXIT_MARK,
    REDACTED,
    CompileError,
    Source,
    cluster_name,
    compile_task,
    redacted,
    resolve_values,
    to_yaml,
)
from spotrain.recipes.loader import load_recipe
from spotrain.recipes.runtime.events import EVENT_MARK

from conftest import spotrain

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
SKY_PY = os.environ.get("SPOTRAIN_SKY_PYTHON", "")
HAVE_SKY = bool(SKY_PY) and Path(SKY_PY).exists()
SRC = Source(version="0.1.0", path="/src/spotrain", digest="abc123def4567890", constraints="constraints.txt")

L4_SPOT = Offer(
    "aws",
    "us-east-1",
    "use1-az1",
    "g6.xlarge",
    "L4",
    1.0,
    4.0,
    16.0,
    spot=True,
    hourly=0.35,
    on_demand_hourly=0.80,
)
A10_OD = Offer(
    "gcp",
    "us-central1",
    "",
    "g2-standard-8",
    "L4",
    1.0,
    8.0,
    32.0,
    spot=False,
    hourly=0.85,
    on_demand_hourly=0.85,
)
SLURM = Offer(
    "slurm", "skylocal", "", "2CPU--4GB", "", 0.0, 2.0, 4.0, spot=False, hourly=0.14, on_demand_hourly=0.14
)


def _recipe(overrides=()):
    loaded = load_recipe(str(ROOT / "recipes" / "gpt2-small.yaml"), list(overrides))
    return loaded.recipe, loaded.base_dir


def _compile(offers, overrides=(), **kw):
    r, d = _recipe(overrides)
    return compile_task(
        r, "name: x\n", offers, recipe_dir=str(d), source=SRC, task_name="sp-x", run_id="job-7", **kw
    )


def test_one_attempt_targets_exactly_the_chosen_offer():
    c = _compile([L4_SPOT, A10_OD]).config
    res = c["resources"]
    assert res == {
        "infra": "aws/us-east-1",  # no zone name known for use1-az1: SkyPilot picks the zone
        "use_spot": True,
        "instance_type": "g6.xlarge",
        "disk_size": 200,
        "accelerators": {"L4": 1},
    }
    assert c["num_nodes"] == 1 and c["workdir"] == str(ROOT / "recipes")
    assert c["file_mounts"] == {"~/.spotrain/src": "/src/spotrain"}
    assert c["envs"]["SPOTRAIN_RUN_ID"] == "job-7"
    # setup installs spotrain with its pins, once per source version; run mirrors events and exit code
    # (uv when the node has it, else pip; both with the checkout's pins)
    assert (
        '"$UV" pip install -q --compile-bytecode --python "$V/bin/python" '
        "-c ~/.spotrain/src/constraints.txt ~/.spotrain/src" in c["setup"]
    )
    assert '"$V/bin/pip" install -q -c ~/.spotrain/src/constraints.txt ~/.spotrain/src' in c["setup"]
    assert (
        "env}-0.1.0-abc123def456" in c["setup"] and "flock" in c["setup"] and ".spotrain-ready" in c["setup"]
    )
    assert "SPOTRAIN_EVENTS_STDOUT=1" in c["run"] and EXIT_MARK.strip() in c["run"]
    assert "spotrain run .spotrain-recipe.yaml --workdir" in c["run"]


def test_managed_job_pools_offers_as_any_of_or_ordered_with_one_recovery_policy():
    c = _compile([L4_SPOT, A10_OD, L4_SPOT], mode="skypilot", zone_names=NAMES).config
    any_of = c["resources"]["any_of"]
    assert [r["infra"] for r in any_of] == [
        "aws/us-east-1/us-east-1b",
        "gcp/us-central1",
    ]  # duplicates folded
    assert [r["use_spot"] for r in any_of] == [True, False]
    assert c["resources"]["job_recovery"] == {"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": 0}
    ordered = _compile([A10_OD, L4_SPOT], mode="skypilot", ordered=True).config["resources"]
    assert [r["infra"] for r in ordered["ordered"]] == ["gcp/us-central1", "aws/us-east-1"]


NAMES = {"use1-az1": "us-east-1b", "use1-az2": "us-east-1c"}


def test_aws_zones_are_pinned_only_for_spot_and_by_this_accounts_zone_name():
    """The catalog's AWS zones are zone IDs; SkyPilot (with credentials) knows zones by name. A spot
    offer is pinned to its zone's name; an on-demand one never (its price is the region's); an
    unknown ID is not pinned. Other clouds' zones are names already and stay."""
    from dataclasses import replace

    od = replace(L4_SPOT, spot=False, hourly=0.8)
    gcp_zone = replace(A10_OD, zone="us-central1-a")
    infra = lambda o: _compile([o], zone_names=NAMES).config["resources"]["infra"]  # noqa: E731
    assert infra(L4_SPOT) == "aws/us-east-1/us-east-1b"
    assert infra(od) == "aws/us-east-1"
    assert infra(replace(L4_SPOT, zone="use1-az9")) == "aws/us-east-1"
    assert infra(gcp_zone) == "gcp/us-central1/us-central1-a"


def test_slurm_offers_are_carved_by_cpus_and_memory():
    c = _compile([SLURM]).config
    assert c["resources"] == {"infra": "slurm/skylocal", "use_spot": False, "cpus": "2", "memory": "4"}


def test_multi_node_wires_skypilot_rank_ips_and_gpus_into_accelerate():
    c = _compile([L4_SPOT], ["resources.num_nodes=4"]).config
    assert c["num_nodes"] == 4
    run = c["run"]
    for needle in (
        "SKYPILOT_NODE_IPS",
        '--machine_rank "$SKYPILOT_NODE_RANK"',
        "SKYPILOT_NUM_GPUS_PER_NODE",
        '--num_machines "$SKYPILOT_NUM_NODES"',
        "accelerate.commands.launch",
        '--main_process_ip "$MASTER"',
    ):
        assert needle in run, needle
    single = _compile([L4_SPOT]).config["run"]
    assert "accelerate.commands.launch" not in single and "--nproc" in single


def test_secrets_are_passed_but_never_shown():
    c = _compile([L4_SPOT], secrets={"HF_TOKEN": "hf_s3cr3t"}, env={"WANDB_MODE": "offline"}).config
    assert c["secrets"] == {"HF_TOKEN": "hf_s3cr3t"} and c["envs"]["WANDB_MODE"] == "offline"
    shown = to_yaml(redacted(c))
    assert "hf_s3cr3t" not in shown and f"HF_TOKEN: {REDACTED}" in shown
    assert c["secrets"]["HF_TOKEN"] == "hf_s3cr3t"  # redaction copies


def test_the_stop_by_moment_travels_in_the_task():
    """The controller hands each attempt its stop-by moment as env; on a cloud node it is the task's
    env, so the node stops itself at the cap or deadline even if the controller is gone."""
    c = _compile([L4_SPOT], env={"SPOTRAIN_STOP_BY": "1796676518.5", "SPOTRAIN_JOB_ID": "3"}).config
    assert c["envs"]["SPOTRAIN_STOP_BY"] == "1796676518.5"


def test_null_values_come_from_the_launching_shell():
    assert resolve_values({"A": None, "B": "x"}, {"A": "from-shell"}, "env") == {"A": "from-shell", "B": "x"}
    with pytest.raises(CompileError, match="MISSING.*not set here"):
        resolve_values({"MISSING": None}, {}, "secrets")


def test_checkpoints_off_the_bucket_warn_and_bad_offers_fail():
    assert any("not a bucket" in w for w in _compile([L4_SPOT]).warnings)
    assert _compile([L4_SPOT], ["storage.checkpoints=s3://b/p"]).warnings == []
    assert (
        _compile([SLURM], ["storage.checkpoints=/shared/ckpt"]).warnings == []
    )  # a Slurm cluster's shared disk
    with pytest.raises(CompileError, match="cannot launch on cloud 'onprem'"):
        _compile([replace(L4_SPOT, cloud="onprem")])
    with pytest.raises(CompileError, match="no offers"):
        _compile([])


def test_cluster_names_are_valid_for_every_cloud():
    assert cluster_name("GPT2_small.v1", 12, 3) == "sp-gpt2-small-v1-12-a3"
    assert cluster_name("7b", None) == "sp-j7b"
    assert cluster_name("tiny", 1, 2, token="x9f3a") == "sp-tiny-1x9f3a-a2"


def test_recipe_env_and_secret_names_are_checked(write_recipe):
    from conftest import tiny_recipe

    p = write_recipe({**tiny_recipe(), "env": {"1BAD": "x"}})
    res = spotrain("recipe", "validate", str(p))
    assert res.returncode == 2 and "1BAD" in res.stderr and "Traceback" not in res.stderr


def test_event_mirror_is_what_the_backend_parses(tmp_path, monkeypatch, capsys):
    from spotrain.launcher.backends.skypilot import parse_log
    from spotrain.recipes.runtime.events import EventLog

    monkeypatch.setenv("SPOTRAIN_EVENTS_STDOUT", "1")
    log = EventLog(tmp_path / "events.jsonl", clock=lambda: 5.0)
    log.emit("step", step=3, loss=1.5)
    log.close()
    out = capsys.readouterr().out
    assert out.startswith(EVENT_MARK)
    prefixed = (
        "".join(f"(task, pid=1) {line}\n" for line in out.splitlines()) + f"(task, pid=1) {EXIT_MARK}143\n"
    )
    events, code = parse_log(prefixed + '(task, pid=1) SPOTRAIN_EVENT {"cut\n')
    assert [json.loads(e) for e in events] == [
        json.loads(l) for l in (tmp_path / "events.jsonl").read_text().splitlines()
    ]
    assert code == 143


def _node_log(lines: int) -> list[str]:
    """A node's log as SkyPilot serves it: event lines (each with its own time) among plain lines
    that repeat (blank lines, a warning printed every step)."""
    out = []
    for i in range(lines):
        if i % 3 == 0:
            out.append(
                f"(task, pid=7) {EVENT_MARK}"
                + json.dumps({"event": "step", "step": i, "time": 1000.0 + i})
                + "\n"
            )
        else:
            out.append("(task, pid=7) UserWarning: the same warning every step\n" if i % 3 == 1 else "\n")
    return out


def test_log_pulls_join_the_tail_to_the_copy_they_have():
    from spotrain.launcher.backends.skypilot import join_tail

    log, n = _node_log(300), 40
    for have_len, now_len in ((100, 100), (100, 101), (100, 130), (100, 138), (5, 30), (299, 300)):
        have, now = "".join(log[:have_len]), log[:now_len]
        assert join_tail(have, "".join(now[-n:]), n) == "".join(now), (have_len, now_len)
        # the last pull cut a line short: the tail brings it whole
        cut = have + log[have_len][:9]
        assert join_tail(cut, "".join(now[-n:]), n) == "".join(now) or now_len == have_len
    # more new lines than the tail holds: no seam, pull the whole log
    assert join_tail("".join(log[:100]), "".join(log[200 - n : 200]), n) is None
    # fewer lines than asked for: the tail is the whole log
    assert join_tail("".join(log[:10]), "".join(log[:20]), n) == "".join(log[:20])
    # ... but never one shorter than the copy: SkyPilot prints nothing for a tail that lies past a
    # start mark it did not see (a long setup log before the run): pull the whole log
    assert join_tail("".join(log[:10]), "", n) is None
    # a tail whose overlap has no event line could join in several places: pull the whole log
    plain = ["x\n", "y\n"] * 50
    assert join_tail("".join(plain[:60]), "".join(plain[-n:]), n) is None
    # a copy that is not a prefix of the log (a rewritten log): no seam
    other = [l.replace("pid=7", "pid=8") for l in log]
    assert join_tail("".join(other[:100]), "".join(log[110 - n : 110]), n) is None


# ---------------------------------------------------------------------------- the CLI
def _dry_run(recipe: Path, *extra: str, env: dict | None = None):
    return spotrain("launch", str(recipe), "--backend", "sky", "--dry-run", "--no-live", *extra, env=env)


def test_dry_run_prints_yaml_with_secrets_redacted_and_launches_nothing(tmp_path):
    env = {"SPOTRAIN_HOME": str(tmp_path / "home")}
    res = _dry_run(
        ROOT / "recipes" / "tiny-gpt.yaml", "secrets={HF_TOKEN: tok_very_secret}", "env={MODE: fast}", env=env
    )
    assert res.returncode == 0, res.stderr
    assert "tok_very_secret" not in res.stdout + res.stderr
    cfg = yaml.safe_load(res.stdout)
    assert cfg["secrets"] == {"HF_TOKEN": REDACTED} and cfg["envs"]["MODE"] == "fast"
    assert "spotrain run" in cfg["run"]
    st = spotrain("status", "--json", env=env)
    assert st.returncode == 0 and json.loads(st.stdout or "[]") == []  # no job was created


def test_dry_run_needs_the_sky_backend_and_sky_rejects_injected_preemptions():
    res = spotrain("launch", str(ROOT / "recipes" / "tiny-gpt.yaml"), "--dry-run", "--no-live")
    assert res.returncode == 2 and "--backend sky" in res.stderr and "Traceback" not in res.stderr
    res = spotrain(
        "launch",
        str(ROOT / "recipes" / "tiny-gpt.yaml"),
        "--backend",
        "sky",
        "--preempt-every",
        "30s",
        "--no-live",
        "-y",
    )
    assert res.returncode == 2 and "local backend only" in res.stderr


def test_a_secret_missing_from_the_shell_is_a_one_line_error():
    env = {k: v for k, v in os.environ.items() if k != "NOT_SET_ANYWHERE"}
    res = spotrain(
        "launch",
        str(ROOT / "recipes" / "tiny-gpt.yaml"),
        "--backend",
        "sky",
        "--no-live",
        "-y",
        "secrets={NOT_SET_ANYWHERE: null}",
        env=env,
    )
    errors = [l for l in res.stderr.splitlines() if not l.startswith("warning:")]
    assert res.returncode == 2 and len(errors) == 1 and "NOT_SET_ANYWHERE" in errors[0], res.stderr


def in_skypilot(configs: list[dict], fields: str) -> list[dict]:
    """Each task config loaded by SkyPilot's own ``sky.Task.from_yaml_config`` (in its venv), as
    the dict the Python expression ``fields`` makes of the task ``t``."""
    script = (
        "import json, sys\nsys.path.pop(0)\nimport sky\nout = []\nfor c in json.load(sys.stdin):\n"
        f"    t = sky.Task.from_yaml_config(c)\n    out.append({fields})\nprint('OUT:' + json.dumps(out))\n"
    )
    env = {
        **os.environ,
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
        "DO_NOT_TRACK": "1",
        "SKYPILOT_DISABLE_LOCAL_API_SERVER": "1",
    }
    res = subprocess.run(
        [SKY_PY, "-c", script],
        input=json.dumps(configs),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads([l for l in res.stdout.splitlines() if l.startswith("OUT:")][-1][4:])


@pytest.mark.skipif(not HAVE_SKY, reason="needs SPOTRAIN_SKY_PYTHON (SkyPilot venv)")
@pytest.mark.parametrize("mode", ["spotrain", "skypilot"])
def test_every_shipped_recipe_loads_in_skypilot(mode):
    """The real `sky.Task.from_yaml_config` accepts every shipped recipe's task (both controller modes)."""
    configs = []
    for recipe in RECIPES:
        res = _dry_run(recipe, f"recovery.controller={mode}", "secrets={TOKEN: abc}")
        assert res.returncode == 0, (recipe.name, res.stderr)
        configs.append(yaml.safe_load(res.stdout))
    got = in_skypilot(
        configs,
        "{'name': t.name, 'nodes': t.num_nodes, 'spot': sorted({r.use_spot for r in t.resources}), "
        "'n': len(t.resources), 'run': t.run, 'secrets': sorted(t.secrets)}",
    )
    assert len(got) == len(RECIPES)
    for cfg, g in zip(configs, got):
        assert g["name"] == cfg["name"] and g["nodes"] == cfg["num_nodes"] and g["run"] == cfg["run"]
        assert g["secrets"] == ["TOKEN"]
        if mode == "skypilot":
            assert g["n"] == len(cfg["resources"].get("any_of", [None]))
        else:
            assert g["n"] == 1 and g["spot"] == [cfg["resources"]["use_spot"]]


TPU = Offer(
    "gcp",
    "us-west4",
    "us-west4-a",
    "TPU-VM",
    "tpu-v5litepod-8",
    1.0,
    0.0,
    0.0,
    spot=True,
    hourly=2.06,
    on_demand_hourly=9.6,
)
TPU_V6 = Offer(
    "gcp",
    "us-east5",
    "",
    "TPU-VM",
    "tpu-v6e-8",
    1.0,
    0.0,
    0.0,
    spot=False,
    hourly=21.6,
    on_demand_hourly=21.6,
)


def test_a_tpu_offer_compiles_to_skypilots_tpu_vm_form_with_matching_torch_and_torch_xla():
    c = _compile([TPU]).config
    assert c["resources"] == {
        "infra": "gcp/us-west4/us-west4-a",
        "use_spot": True,
        "accelerators": {"tpu-v5litepod-8": 1},
        "accelerator_args": {"runtime_version": "v2-alpha-tpuv5", "tpu_vm": True},
        "disk_size": 200,
    }
    assert c["envs"]["SPOTRAIN_XLA"] == "1" and c["envs"]["SPOTRAIN_TPU_CHIPS"] == "8"
    # torch and torch_xla pinned to the same release (the checkout's CPU torch pin is not used there)
    assert 'printf "torch==%s\\ntorch_xla==%s\\n" 2.8.0 2.8.0 > "$V.pins"' in c["setup"]
    assert (
        '-c "$V.pins" ~/.spotrain/src "torch_xla[tpu]==2.8.0" -f https://storage.googleapis.com/libtpu-releases'
        in c["setup"]
    )
    assert "constraints.txt" not in c["setup"]
    assert c["setup"].count('-xla"') == 1 and '--nproc "$SPOTRAIN_TPU_CHIPS"' in c["run"]  # its own env
    v6 = _compile([TPU_V6], mode="skypilot").config["resources"]
    assert v6["accelerator_args"]["runtime_version"] == "v2-alpha-tpuv6e"
    mixed = _compile([TPU, L4_SPOT], mode="skypilot")
    assert "accelerators" in mixed.config["resources"] and "any_of" not in mixed.config["resources"]
    assert any("runs either TPUs or GPUs: left out aws/us-east-1/g6.xlarge" in w for w in mixed.warnings)
    with pytest.raises(CompileError, match="a TPU slice runs on one node"):
        _compile([TPU], ["resources.num_nodes=2"])


@pytest.mark.skipif(not HAVE_SKY, reason="needs SPOTRAIN_SKY_PYTHON (SkyPilot venv)")
def test_tpu_tasks_load_in_skypilot():
    """SkyPilot's own Task.from_yaml_config takes the compiled TPU tasks as TPU VM resources on GCP."""
    configs = [_compile([TPU]).config, _compile([TPU_V6], mode="skypilot").config]
    got = in_skypilot(
        configs,
        "(lambda r: {'cloud': str(r.cloud), 'acc': r.accelerators, 'args': r.accelerator_args, "
        "'spot': r.use_spot, 'zone': r.zone})(list(t.resources)[0])",
    )
    assert got[0]["cloud"] == "GCP" and got[0]["acc"] == {"tpu-v5litepod-8": 1} and got[0]["spot"] is True
    assert got[0]["args"]["tpu_vm"] is True and got[0]["args"]["runtime_version"] == "v2-alpha-tpuv5"
    assert got[0]["zone"] == "us-west4-a"
    assert got[1]["acc"] == {"tpu-v6e-8": 1} and got[1]["args"]["runtime_version"] == "v2-alpha-tpuv6e"
