"""Recipe + chosen offers → a SkyPilot task config (the dict `sky.Task.from_yaml_config` takes).

Pure: no SkyPilot import, no I/O. The backend hands the dict to SkyPilot; `spotrain launch
--backend sky --dry-run` prints it (secrets redacted).

What the node does:
- ``workdir`` is the recipe's folder (SkyPilot syncs it to ``~/sky_workdir`` honouring
  .gitignore/.skyignore), so the recipe's relative data paths resolve there.
- ``setup`` makes a Python ≥ 3.11 virtualenv keyed by spotrain's version and installs spotrain
  (from the synced source checkout when launched from one, else from the package index) with
  its pinned constraints. It is skipped when that env already exists (a relaunch on the same
  node or image), and built in a temporary folder first so an interrupted setup is redone.
- ``run`` writes the recipe (overrides applied) next to the data and starts ``spotrain run``
  — through ``accelerate launch`` across nodes when ``num_nodes > 1``, wired from
  SKYPILOT_NODE_RANK / SKYPILOT_NODE_IPS / SKYPILOT_NUM_GPUS_PER_NODE. The node mirrors its
  metrics events and exit code into the log (``SPOTRAIN_EVENT``/``SPOTRAIN_EXIT`` lines), which
  is how the controller follows progress without a shared disk.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import yaml

from spotrain.errors import SpotrainError
from spotrain.pricing import accelerators
from spotrain.pricing.offer import Offer
from spotrain.recipes.runtime import xla
from spotrain.recipes.loader import REDACTED
from spotrain.recipes.schema import Recipe

EXIT_MARK = "SPOTRAIN_EXIT "
SRC_MOUNT = "~/.spotrain/src"
RUN_DIR = "~/.spotrain/runs"
# clouds whose "instances" are carved out of a cluster by cpus/memory, not named instance types
_CARVED = {"slurm", "kubernetes", "k8s"}
_SKY_CLOUDS = {
    "aws",
    "gcp",
    "azure",
    "lambda",
    "runpod",
    "vast",
    "oci",
    "ibm",
    "scp",
    "fluidstack",
    "paperspace",
    "cudo",
    "do",
    "nebius",
    "vsphere",
    "hyperbolic",
    "seeweb",
    "shadeform",
    "primeintellect",
    "slurm",
    "kubernetes",
    "k8s",
    "ssh",
}


class CompileError(SpotrainError):
    pass


@dataclass(frozen=True)
class Source:
    """Where the node gets spotrain: a source checkout to sync (``path``), else
    ``pip install spotrain==version``."""

    version: str
    path: str | None = None
    digest: str = ""  # content hash of the checkout: a changed checkout gets a fresh node env
    constraints: str | None = None  # constraints file inside the checkout (relative), pinned on the node too

    @property
    def key(self) -> str:
        return self.version + (f"-{self.digest[:12]}" if self.path else "")


@dataclass(frozen=True)
class Compiled:
    config: dict
    warnings: list[str] = field(default_factory=list)


def cluster_name(job_name: str, job_id: int | None, attempt: int | None = None, token: str = "") -> str:
    """A SkyPilot cluster name: lowercase letters, digits and dashes, starting with a letter.
    ``token`` tells apart jobs with the same id from different spotrain homes on one SkyPilot."""
    base = "".join(c if c.isalnum() else "-" for c in job_name.lower()).strip("-") or "job"
    if not base[0].isalpha():
        base = "j" + base
    parts = ["sp", base[:24].rstrip("-")]
    if job_id is not None:
        parts.append(f"{job_id}{token}")
    if attempt is not None:
        parts.append(f"a{attempt}")
    return "-".join(parts)


def resolve_values(values: Mapping[str, str | None], environ: Mapping[str, str], what: str) -> dict[str, str]:
    """``env``/``secrets`` with null values taken from the launching shell; a missing one is an error."""
    out, missing = {}, []
    for k, v in values.items():
        if v is None:
            if k not in environ:
                missing.append(k)
                continue
            v = environ[k]
        out[k] = str(v)
    if missing:
        raise CompileError(
            f"{what} {', '.join(missing)}: null in the recipe means 'copy from this shell', but it is not "
            "set here — export it or give a value"
        )
    return out


def _resources(offer: Offer, recipe: Recipe, zone_names: Mapping[str, str] | None = None) -> dict:
    cloud = offer.cloud.lower()
    if cloud not in _SKY_CLOUDS:
        raise CompileError(
            f"offer {cloud}/{offer.region}/{offer.instance}: SkyPilot cannot launch on cloud {cloud!r} "
            f"— use the local backend for it, or restrict resources.clouds to SkyPilot clouds"
        )
    zone = offer.zone
    if cloud == "aws":
        # AWS catalogs hold zone IDs (use1-az1); SkyPilot, given credentials, names zones by this
        # account's zone names (sky/catalog/aws_catalog.py: _fetch_and_apply_az_mapping). A spot
        # offer's zone is where its price was seen: pinned, by name, when the name is known. An
        # on-demand price is the region's: SkyPilot picks the zone.
        zone = (zone_names or {}).get(zone, "") if offer.spot else ""
    infra = cloud
    if offer.region:
        infra += f"/{offer.region}"
        if zone:
            infra += f"/{zone}"
    res: dict = {"infra": infra, "use_spot": bool(offer.spot)}
    if is_tpu(offer):  # a TPU VM: the slice is the machine (no instance type), SkyPilot's TPU form
        res["accelerators"] = {offer.accelerator: 1}
        res["accelerator_args"] = {"runtime_version": tpu_runtime_version(offer.accelerator), "tpu_vm": True}
        res["disk_size"] = int(recipe.resources.disk_gb)
        return res
    if cloud in _CARVED:
        if offer.vcpus:
            res["cpus"] = f"{offer.vcpus:g}"
        if offer.memory_gb:
            res["memory"] = f"{offer.memory_gb:g}"
        res["use_spot"] = False if cloud == "slurm" else res["use_spot"]  # Slurm has no spot market
    else:
        res["instance_type"] = offer.instance
        res["disk_size"] = int(recipe.resources.disk_gb)
    if offer.accelerator:
        count = float(offer.count or 1)
        res["accelerators"] = {offer.accelerator: int(count) if count.is_integer() else count}
    return res


def is_tpu(offer: Offer) -> bool:
    return offer.accelerator.lower().startswith("tpu-")


def tpu_runtime_version(accelerator: str) -> str:
    """The TPU VM software version SkyPilot 0.14.1 defaults to for that generation
    (``_get_default_runtime_version``, sky/resources.py:983)."""
    if accelerator.startswith("tpu-v5"):
        return "v2-alpha-tpuv5"
    if accelerator.startswith("tpu-v6e"):
        return "v2-alpha-tpuv6e"
    return "tpu-vm-base"


def _venv(source: Source, tpu: bool = False) -> str:
    # SPOTRAIN_NODE_ENV (set it in the recipe's `env`) puts the env on a shared disk — a Slurm
    # cluster's NFS home — so every attempt reuses one install instead of building its own
    return f"${{SPOTRAIN_NODE_ENV:-$HOME/.spotrain/env}}-{source.key}" + ("-xla" if tpu else "")


def _setup(source: Source, tpu: bool = False) -> str:
    cons = f" -c {SRC_MOUNT}/{source.constraints}" if source.path and source.constraints else ""
    target = SRC_MOUNT if source.path else f'"spotrain=={source.version}"'
    pins = []
    if tpu:  # torch_xla pairs only with its own torch: both pinned, instead of the checkout's torch pin
        cons = ' -c "$V.pins"'
        target += f' "torch_xla[tpu]=={xla.TORCH_XLA}" -f {xla.LIBTPU_INDEX}'
        pins = [f'printf "torch==%s\\ntorch_xla==%s\\n" {xla.TORCH_XLA} {xla.TORCH_XLA} > "$V.pins"']
    return (
        "\n".join(
            [
                "set -euo pipefail",
                f'V="{_venv(source, tpu)}"',
                'mkdir -p "$(dirname "$V")"',
                *pins,
                'exec 9>"$V.lock" && flock 9  # attempts sharing the env install it once',
                'if [ -f "$V/.spotrain-ready" ] && [ -z "${SPOTRAIN_REINSTALL:-}" ]; then '
                'echo "spotrain env $V is ready"; exit 0; fi',
                "# uv when the node has it (SkyPilot installs it on every node): ~15x faster than pip for "
                "this",
                "# stack; SPOTRAIN_NODE_INSTALLER=pip forces pip (uv reads UV_* settings, not pip.conf). "
                "Bytecode",
                "# is compiled at install as pip does, or each attempt compiles torch & co. when it starts",
                'UV=$(command -v uv || ls "$HOME/.local/bin/uv" 2>/dev/null || true)',
                '[ "${SPOTRAIN_NODE_INSTALLER:-uv}" = pip ] && UV=""',
                "# a Python >= 3.11 on the node; else a uv-managed one",
                'PY=""',
                "for p in python3.11 python3.12 python3.13; do "
                'PY=$(command -v $p || true); [ -n "$PY" ] && break; done',
                'if [ -z "$PY" ]; then '
                '"${UV:-uv}" python install 3.11 && PY=$("${UV:-uv}" python find 3.11); fi',
                'rm -rf "$V"',
                'if [ -n "$UV" ]; then',
                '  "$UV" venv -q --python "$PY" "$V" && '
                f'"$UV" pip install -q --compile-bytecode --python "$V/bin/python"{cons} {target}',
                "else",
                f'  "$PY" -m venv "$V" && "$V/bin/pip" install -q{cons} {target}',
                "fi",
                'touch "$V/.spotrain-ready"  # only a complete install is reused',
                '"$V/bin/spotrain" --version',
            ]
        )
        + "\n"
    )


def _run(recipe_text: str, workdir: str, num_nodes: int, source: Source, tpu: bool = False) -> str:
    eof = "SPOTRAIN_RECIPE_EOF"
    while eof in recipe_text:
        eof += "_"
    lines = [
        "set -uo pipefail",
        f'V="{_venv(source, tpu)}"',
        'export PATH="$V/bin:$PATH" SPOTRAIN_EVENTS_STDOUT=1',
        f"cat > .spotrain-recipe.yaml <<'{eof}'",
        recipe_text.rstrip("\n"),
        eof,
        f"W={workdir}",
    ]
    if num_nodes > 1:
        lines += [
            'MASTER=$(echo "$SKYPILOT_NODE_IPS" | head -n1)',
            "GPUS=${SKYPILOT_NUM_GPUS_PER_NODE:-0}; PER=$(( GPUS > 0 ? GPUS : 1 ))",
            'python -m accelerate.commands.launch --multi_gpu --num_machines "$SKYPILOT_NUM_NODES" '
            '--machine_rank "$SKYPILOT_NODE_RANK" --main_process_ip "$MASTER" --main_process_port 29500 '
            "--num_processes $(( SKYPILOT_NUM_NODES * PER )) --mixed_precision no --dynamo_backend no "
            '-m spotrain run .spotrain-recipe.yaml --workdir "$W"',
        ]
    elif tpu:  # one process per chip of the slice
        lines.append(f'spotrain run .spotrain-recipe.yaml --workdir "$W" --nproc "${xla.CHIPS_ENV}"')
    else:
        lines.append(
            'spotrain run .spotrain-recipe.yaml --workdir "$W" '
            '--nproc "$(( ${SKYPILOT_NUM_GPUS_PER_NODE:-0} > 1 ? SKYPILOT_NUM_GPUS_PER_NODE : 1 ))"'
        )
    lines += ["rc=$?", f'echo "{EXIT_MARK}$rc"', "exit $rc"]
    return "\n".join(lines) + "\n"


def compile_task(
    recipe: Recipe,
    recipe_text: str,
    offers: Iterable[Offer],
    *,
    recipe_dir: str,
    source: Source,
    task_name: str,
    run_id: str,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    mode: str = "spotrain",
    ordered: bool = False,
    zone_names: Mapping[str, str] | None = None,
) -> Compiled:
    """The SkyPilot task for ``recipe`` on ``offers`` (best first).

    ``mode="spotrain"``: one attempt on exactly ``offers[0]`` (spotrain's controller picks it).
    ``mode="skypilot"``: a managed job over every offer — ``any_of`` (SkyPilot takes the cheapest
    it can get) or, with ``ordered``, an ordered list — with ``job_recovery``.
    """
    offers = list(offers)
    if not offers:
        raise CompileError("no offers to compile — the planner found nothing that fits; see `spotrain plan`")
    warnings: list[str] = []
    tpu = is_tpu(offers[0])
    if tpu and recipe.resources.num_nodes > 1:
        raise CompileError("a TPU slice runs on one node — set resources.num_nodes to 1 or choose GPUs")
    if mode != "spotrain" and any(is_tpu(o) != tpu for o in offers):
        # one setup installs either the TPU stack or the GPU one: the managed job keeps the best's kind
        dropped = [o.place for o in offers if is_tpu(o) != tpu]
        offers = [o for o in offers if is_tpu(o) == tpu]
        warnings.append(f"a managed job runs either TPUs or GPUs: left out {', '.join(dropped)}")
    ckpt = recipe.storage.checkpoints
    if not recipe.storage.remote():
        carved_only = all(o.cloud.lower() == "slurm" for o in offers)
        if not (carved_only and ckpt and ckpt.startswith("/")):
            warnings.append(
                "storage.checkpoints is not a bucket: a replacement node cannot see the lost node's disk, "
                "so a preemption restarts training from step 0 — set storage.checkpoints to s3://… or "
                "gs://… (an absolute path works only on a Slurm cluster's shared filesystem)"
            )
    if mode == "spotrain":
        resources: dict = _resources(offers[0], recipe, zone_names)
    else:
        opts = [_resources(o, recipe, zone_names) for o in offers]
        uniq = []
        for r in opts:
            if r not in uniq:
                uniq.append(r)
        resources = {("ordered" if ordered else "any_of"): uniq} if len(uniq) > 1 else dict(uniq[0])
        resources["job_recovery"] = {"strategy": "EAGER_NEXT_REGION", "max_restarts_on_errors": 0}
    envs = {"SPOTRAIN_RUN_ID": run_id, **dict(env or {})}
    if tpu:
        chips = accelerators.tpu_chips(offers[0].accelerator)
        envs.update({xla.ENV: "1", xla.CHIPS_ENV: str(chips[1] if chips else 1)})
    config: dict = {
        "name": task_name,
        "workdir": recipe_dir,
        "num_nodes": int(recipe.resources.num_nodes),
        "resources": resources,
        "envs": envs,
    }
    if secrets:
        config["secrets"] = dict(secrets)
    if source.path:
        config["file_mounts"] = {SRC_MOUNT: source.path}
    config["setup"] = _setup(source, tpu)
    config["run"] = _run(
        recipe_text, f"{RUN_DIR}/{shlex.quote(run_id)}", recipe.resources.num_nodes, source, tpu
    )
    return Compiled(config, warnings)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value: str):
    if "\n" in value:
        value = "\n".join(line.rstrip() for line in value.split("\n"))  # block style needs no trailing blanks
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def node_recipe_text(loaded) -> str:
    """The recipe as the node runs it: what the user set (overrides applied), paths relative to its
    folder, no env or secrets."""
    node = loaded.recipe.model_dump(mode="json", by_alias=True, exclude_unset=True)
    node.pop("env", None)
    node.pop("secrets", None)
    return yaml.safe_dump(node, sort_keys=False)


def to_yaml(config: Mapping) -> str:
    """The task as YAML, scripts as readable literal blocks (what ``sky launch task.yaml`` takes)."""
    return yaml.dump(dict(config), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def redacted(config: Mapping) -> dict:
    """A copy safe to print or store: every secret's value replaced."""
    out = copy.deepcopy(dict(config))
    if out.get("secrets"):
        out["secrets"] = {k: REDACTED for k in out["secrets"]}
    return out
