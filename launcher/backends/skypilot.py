"""The SkyPilot backend: each attempt is a SkyPilot cluster launched with ``sky.launch`` on exactly
the offer spotrain's controller picked; the attempt ends when its job ends or its cluster is
gone (a preemption), and the cluster is torn down when the attempt ends.

SkyPilot runs in its own Python (``$SPOTRAIN_SKY_PYTHON``, or this one when it can import
``sky``) behind :mod:`sky_bridge`, one long-lived process per controller. Progress comes from
the job's log: the node mirrors its metric events there (``SPOTRAIN_EVENT`` lines), and this
backend rebuilds the attempt's ``events.jsonl`` and ``attempt.log`` from it, so the controller
reads a SkyPilot attempt exactly like a local one.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from spotrain.errors import SpotrainError
from spotrain.pricing.offer import Offer
from spotrain.launcher.compiler import EXIT_MARK, Source, cluster_name, compile_task
from spotrain.recipes.runtime.events import EVENT_MARK
from spotrain.recipes.schema import Recipe

from .base import AttemptState, Backend, ProvisionError

SKY_ENV = {"SKYPILOT_DISABLE_USAGE_COLLECTION": "1", "DO_NOT_TRACK": "1", "AWS_EC2_METADATA_DISABLED": "true"}


def poll_seconds() -> float:
    """How often a running attempt's state and log are pulled (``SPOTRAIN_SKY_POLL``; each pull
    costs the node ~1.5 CPU-s)."""
    return float(os.environ.get("SPOTRAIN_SKY_POLL", "5"))


def tail_lines() -> int:
    """A log pull asks for this many last lines and joins them to its copy (``SPOTRAIN_SKY_TAIL_LINES``)."""
    return int(os.environ.get("SPOTRAIN_SKY_TAIL_LINES", "2000"))


SETUP_FAILED = 2
_MANAGED_DONE = {
    "SUCCEEDED",
    "FAILED",
    "FAILED_SETUP",
    "FAILED_PRECHECKS",
    "FAILED_NO_RESOURCE",
    "FAILED_CONTROLLER",
    "CANCELLED",
    None,
}


class SkyError(SpotrainError):
    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(explain(kind, message))


def explain(kind: str, message: str) -> str:
    if kind == "no_cloud":
        return (
            f"SkyPilot has no cloud enabled for this offer ({message}) — run `sky check` and set up "
            "credentials"
        )
    if kind == "unreachable":
        return (
            f"cannot reach the SkyPilot API server ({message}) — start it with `sky api start` or fix the "
            "endpoint (`sky api info`)"
        )
    if kind == "rejected":
        return f"SkyPilot rejected the task: {message}"
    if kind == "unavailable":
        return f"no capacity: {message}"
    return message


def sky_python() -> str:
    """The interpreter that can import SkyPilot."""
    exe = os.environ.get("SPOTRAIN_SKY_PYTHON")
    if exe:
        if not Path(exe).exists():
            raise SpotrainError(
                f"SPOTRAIN_SKY_PYTHON={exe} does not exist — point it at the python of a venv with skypilot "
                "installed"
            )
        return exe
    if importlib.util.find_spec("sky") is not None:
        return sys.executable
    raise SpotrainError(
        "SkyPilot is not installed — `python3 -m venv ~/.sky-venv && ~/.sky-venv/bin/pip install "
        "-r requirements-sky.txt`, then export SPOTRAIN_SKY_PYTHON=~/.sky-venv/bin/python"
    )


class Bridge:
    """Client of ``sky_bridge.py``: JSON lines over a pipe to a SkyPilot process."""

    def __init__(self, python: str | None = None, timeout: float = 600.0, on_wait=None):
        self.timeout = timeout
        self.on_wait = (
            on_wait  # called every few seconds while a call is in flight (the controller heartbeats)
        )
        self._lock = threading.Lock()
        self._lines: queue.Queue = queue.Queue()
        self._proc = subprocess.Popen(
            [python or sky_python(), str(Path(__file__).with_name("sky_bridge.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None if os.environ.get("SPOTRAIN_DEBUG") else subprocess.DEVNULL,
            text=True,
            env={**os.environ, **SKY_ENV},
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    def _read(self) -> None:
        for line in self._proc.stdout:
            if line.startswith("BRIDGE:"):
                self._lines.put(line)
        self._lines.put(None)  # EOF

    def call(self, op: str, **kw) -> dict:
        with self._lock:
            if self._proc.poll() is not None:
                raise SkyError(
                    "error",
                    f"the SkyPilot bridge exited (code {self._proc.returncode}) — rerun with "
                    "SPOTRAIN_DEBUG=1 to see why",
                )
            try:
                self._proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError):
                raise SkyError(
                    "error", f"the SkyPilot bridge is gone ({op}) — rerun with SPOTRAIN_DEBUG=1 to see why"
                ) from None
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    line = self._lines.get(timeout=2.0)
                    break
                except queue.Empty:
                    if self.on_wait is not None:
                        self.on_wait()
                    if time.monotonic() > deadline:
                        self._proc.kill()  # a reply that never comes: the next call starts over
                        raise SkyError(
                            "error", f"SkyPilot did not answer {op} within {self.timeout:.0f}s"
                        ) from None
            if line is None:
                raise SkyError(
                    "error", f"the SkyPilot bridge died during {op} — rerun with SPOTRAIN_DEBUG=1 to see why"
                )
            reply = json.loads(line[len("BRIDGE:") :])
        if not reply.pop("ok"):
            raise SkyError(reply.get("kind", "error"), reply.get("error", "unknown error"))
        return reply

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.call("close")
                self._proc.wait(timeout=60)
            except (SkyError, OSError, subprocess.TimeoutExpired, ValueError):
                self._proc.kill()


def parse_log(text: str) -> tuple[list[str], int | None]:
    """Events (JSON lines) and the exit code that the node mirrored into the job log."""
    events, code = [], None
    for line in text.splitlines():
        i = line.find(EVENT_MARK)
        if i >= 0:
            body = line[i + len(EVENT_MARK) :].strip()
            try:
                json.loads(body)
            except ValueError:
                continue  # cut short
            events.append(body)
            continue
        i = line.find(EXIT_MARK)
        if i >= 0:
            try:
                code = int(line[i + len(EXIT_MARK) :].split()[0])
            except (ValueError, IndexError):
                pass
    return events, code


def join_tail(have: str, tail: str, n: int) -> str | None:
    """The log now, from the copy pulled before (``have``) and the log's last ``n`` lines now
    (``tail``), or None when the whole log must be pulled instead.

    The seam is found through an anchor: the tail's first complete event line, which carries
    its own timestamp and so occurs once in a log. It must occur exactly once in the copy too,
    and the copy from the seam on must equal the tail's start. Otherwise — more than ``n``
    lines came since the last pull, no event in the overlap, the log was rewritten — there is
    no safe seam. A copy's last line without its newline was cut short by the last pull: the
    tail brings it whole."""
    new = tail.splitlines(keepends=True)
    if len(new) < n:  # fewer lines than asked for: the whole log — unless it is shorter than the copy,
        return tail if len(tail) >= len(have) else None  # as when SkyPilot skips a tail before its start mark
    old = have.splitlines(keepends=True)
    if old and not old[-1].endswith("\n"):
        old.pop()
    anchor = next((i for i, line in enumerate(new) if EVENT_MARK in line and line.endswith("\n")), None)
    if anchor is None:
        return None
    at = [i for i, line in enumerate(old) if line == new[anchor]]
    if len(at) != 1 or new.count(new[anchor]) != 1:
        return None
    p = at[0] - anchor
    if p < 0 or len(old) - p > len(new) or old[p:] != new[: len(old) - p]:
        return None
    return "".join(old[:p] + new)


class SkyBackend(Backend):
    name = "sky"
    emulated = False

    def __init__(self, bridge: Bridge | None = None, clock=time.time):
        self._bridge = bridge
        self.clock = clock
        self._seen: dict[str, tuple[float, AttemptState]] = {}
        self._synced: dict[str, float] = {}

    @property
    def bridge(self) -> Bridge:
        if self._bridge is None or self._bridge._proc.poll() is not None:
            self._bridge = Bridge(on_wait=self.on_wait)
        return self._bridge

    # ------------------------------------------------------------------ provisioning
    def provision(
        self, *, job_id: int, attempt: int, offer: Offer, recipe_path: Path, workdir: Path, env: dict
    ) -> dict:
        job_dir = recipe_path.parent
        spec = json.loads((job_dir / "sky.json").read_text())
        secrets_file = job_dir / "secrets.json"
        secrets = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
        recipe_text = (job_dir / "recipe.node.yaml").read_text()
        import yaml

        recipe = Recipe.model_validate(yaml.safe_load(recipe_text))
        managed = offer.managed  # controller: skypilot — one managed job over the planner's top offers
        token = hashlib.sha256(str(job_dir.resolve()).encode()).hexdigest()[:4]
        cluster = cluster_name(recipe.name, job_id, None if managed else attempt, token=f"x{token}")
        compiled = compile_task(
            recipe,
            recipe_text,
            offer.choices if managed else [offer],
            recipe_dir=spec["recipe_dir"],
            source=Source(**spec["source"]),
            task_name=cluster,
            run_id=f"job-{job_id}",
            env={**spec.get("env", {}), **env},
            secrets=secrets,
            mode="skypilot" if managed else "spotrain",
            zone_names=spec.get("zone_names"),
        )
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "attempt.log").touch()
        try:
            if managed:
                reply = self.bridge.call("jobs_launch", config=compiled.config, name=cluster)
            else:
                reply = self.bridge.call("launch", config=compiled.config, cluster=cluster)
        except SkyError as exc:
            raise ProvisionError(str(exc)) from None
        handle = {
            "cluster": cluster,
            "request_id": reply["request_id"],
            "dir": str(workdir),
            "log": str(workdir / "attempt.log"),
            "submitted": self.clock(),
        }
        if managed:
            handle.update(managed=True, recoveries=0)
        return handle

    # ------------------------------------------------------------------ watching
    def state(self, handle: dict) -> AttemptState:
        key = handle["cluster"]
        now = self.clock()
        cached = self._seen.get(key)
        if cached is not None and now - cached[0] < poll_seconds() and cached[1].running:
            return cached[1]
        st = self._state(handle)
        self._seen[key] = (now, st)
        return st

    def _managed_state(self, handle: dict) -> AttemptState:
        try:
            q = self.bridge.call("jobs_queue", job_id=handle["job_id"])
        except SkyError:
            return AttemptState(
                True, recoveries=handle.get("recoveries", 0)
            )  # transient: ask again next tick
        status = q.get("status")
        # SkyPilot stamps last_recovered_at when the task (re)starts: equal to start_at on the first
        # run, later after each recovery. Its recovery_count stayed 0 after real recoveries (0.14.1,
        # consolidation mode), so each new stamp after the start counts, and recovery_count backs it up.
        stamp = q.get("last_recovered_at")
        if stamp and stamp > 0 and not handle.get("first_stamp"):
            handle["first_stamp"] = stamp
        start = q.get("start_at") or handle.get("first_stamp")  # start_at may be unset while the job runs
        if stamp and start and stamp > start + 1 and stamp != handle.get("recovered_at"):
            handle["seen_recoveries"] = int(handle.get("seen_recoveries", 0)) + 1
            handle["recovered_at"] = stamp
        handle["recoveries"] = max(int(q.get("recovery_count") or 0), int(handle.get("seen_recoveries", 0)))
        running = status in (None, "PENDING", "SUBMITTED", "STARTING", "RUNNING", "RECOVERING", "CANCELLING")
        if running:
            return AttemptState(True, recoveries=handle["recoveries"])
        code = self._exit_code(handle)
        if status == "SUCCEEDED":
            return AttemptState(False, 0 if code is None else code, recoveries=handle["recoveries"])
        if status == "FAILED_SETUP":
            return AttemptState(False, SETUP_FAILED, recoveries=handle["recoveries"])
        if status == "FAILED_NO_RESOURCE":
            return AttemptState(
                False,
                None,
                gone=True,
                provision_error=explain("unavailable", q.get("failure_reason") or status),
                error_kind="unavailable",
            )
        if status in ("FAILED_PRECHECKS",):
            return AttemptState(
                False,
                None,
                gone=True,
                provision_error=explain("rejected", q.get("failure_reason") or status),
                error_kind="rejected",
            )
        if status == "CANCELLED":
            return AttemptState(False, code, recoveries=handle["recoveries"])
        return AttemptState(False, 1 if code is None else code, recoveries=handle["recoveries"])

    def _state(self, handle: dict) -> AttemptState:
        if handle.get("managed") and handle.get("job_id") is not None:
            return self._managed_state(handle)
        if handle.get("job_id") is None:
            res = self.bridge.call("launch_result", request_id=handle["request_id"])
            if res["state"] == "pending":
                return AttemptState(True)
            if res["state"] == "error":
                return AttemptState(
                    False,
                    None,
                    gone=True,
                    provision_error=explain(res.get("kind", "error"), res["error"]),
                    error_kind=res.get("kind", "error"),
                )
            handle["job_id"] = res["job_id"]
            handle["launched"] = self.clock()
            if handle.get("managed"):
                return self._managed_state(handle)
        try:
            status = self.bridge.call("job", cluster=handle["cluster"], job_id=handle["job_id"])["status"]
        except SkyError:
            status = None
        if status in ("INIT", "PENDING", "SETTING_UP", "RUNNING"):
            return AttemptState(True)
        if status is None or status == "FAILED_DRIVER":
            # the job cannot be read: is the cluster still there?
            try:
                cl = self.bridge.call("cluster", cluster=handle["cluster"], refresh=True)["status"]
            except SkyError:
                cl = None
            if cl == "UP" and status is None:
                return AttemptState(True)  # a transient error reading the job
            return AttemptState(False, None, gone=True)
        code = self._exit_code(handle)
        if status == "SUCCEEDED":
            return AttemptState(False, 0 if code is None else code)
        if status == "FAILED_SETUP":
            return AttemptState(False, SETUP_FAILED)
        if status == "CANCELLED":
            # we cancelled it (a graceful stop): it ends when the node wrote its exit code
            if code is None and self.clock() - handle.get("cancelled", 0) < float(handle.get("grace", 120)):
                return AttemptState(True)
            return AttemptState(False, code)
        return AttemptState(False, 1 if code is None else code)

    def _exit_code(self, handle: dict) -> int | None:
        self.sync(handle, force=True)
        return handle.get("exit_code")

    def sync(self, handle: dict, force: bool = False) -> None:
        """Pull the job's log: rebuild ``attempt.log`` and the attempt's ``events.jsonl``."""
        if handle.get("job_id") is None:
            return
        now = self.clock()
        if not force and now - self._synced.get(handle["cluster"], 0) < poll_seconds():
            return
        self._synced[handle["cluster"]] = now
        try:
            if handle.get("managed"):
                text = self.bridge.call("jobs_logs", job_id=handle["job_id"])["text"]
            else:
                text = self._cluster_log(handle)
        except SkyError:
            return  # the cluster is gone: keep what we have
        if "already in terminal state" in text and EVENT_MARK not in text:
            return  # SkyPilot no longer serves a finished managed job's log: keep what we synced
        events, code = parse_log(text)
        d = Path(handle["dir"])
        if len(text) >= _size(Path(handle["log"])):
            _write(Path(handle["log"]), text)
        if events and len(events) >= _lines(d / "events.jsonl"):
            _write(d / "events.jsonl", "".join(e + "\n" for e in events))
        if code is not None:
            handle["exit_code"] = code

    def _cluster_log(self, handle: dict) -> str:
        """The job's whole log: the last ``tail_lines()`` lines joined to the copy pulled before
        (a multi-day job's log is megabytes; a pull every few seconds should not move all of
        it), or the whole log when they do not join."""
        have = _read(Path(handle["log"]))
        if have:
            tail = self.bridge.call(
                "logs", cluster=handle["cluster"], job_id=handle["job_id"], tail=tail_lines()
            )["text"]
            joined = join_tail(have, tail, tail_lines())
            if joined is not None:
                return joined
        return self.bridge.call("logs", cluster=handle["cluster"], job_id=handle["job_id"])["text"]

    # ------------------------------------------------------------------ stopping
    def preempt(self, handle: dict) -> None:
        """Graceful stop: SkyPilot's cancel sends SIGTERM to the job; spotrain checkpoints and exits."""
        if handle.get("job_id") is None:
            return self.kill(handle)
        try:
            if handle.get("managed"):
                self.bridge.call("jobs_cancel", job_id=handle["job_id"])
            else:
                self.bridge.call("cancel", cluster=handle["cluster"], job_id=handle["job_id"])
        except SkyError:
            return
        handle["cancelled"] = self.clock()
        self._seen.pop(handle["cluster"], None)

    def kill(self, handle: dict) -> None:
        if handle.get("managed"):
            if handle.get("job_id") is not None:
                try:
                    self.bridge.call("jobs_cancel", job_id=handle["job_id"])
                except SkyError:
                    pass
            return
        self.release(handle)

    def release(self, handle: dict) -> None:
        """Tear the attempt's cluster down (stops the bill) and note SkyPilot's own cost for it."""
        if handle.get("released"):
            return
        if handle.get("managed"):  # SkyPilot tears its clusters down itself; import its bill
            if handle.get("job_id") is None:  # no managed job came of the launch: nothing is left to bill
                self._forget_launch(handle)
                handle["released"] = self.clock()
                return
            try:
                q = self.bridge.call("jobs_queue", job_id=handle["job_id"])
                if (
                    q.get("status") not in _MANAGED_DONE
                ):  # we stop following it: it must not run (and bill) on
                    self.bridge.call("jobs_cancel", job_id=handle["job_id"])
                    handle["release_error"] = (
                        f"managed job {handle['job_id']} cancelled; waiting for SkyPilot to report it ended"
                    )
                    return  # released once SkyPilot reports it ended
            except SkyError as exc:
                handle["release_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return
            handle.pop("release_error", None)
            handle["released"] = self.clock()  # SkyPilot says the managed job ended: its clusters are gone
            try:
                cost = self.bridge.call("jobs_cost", name=handle["cluster"], job_id=handle["job_id"])
                handle.update(sky_cost=cost.get("cost"), sky_seconds=cost.get("duration"))
            except SkyError:
                pass  # SkyPilot's own bill is for comparison only
            return
        if handle.get("job_id") is None:
            self._forget_launch(handle)
        try:
            self.bridge.call("down", cluster=handle["cluster"], purge=True)
        except SkyError as exc:
            handle["release_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return  # the controller tries again until the cluster is gone
        handle.pop("release_error", None)
        handle["released"] = self.clock()
        try:
            cost = self.bridge.call("cost", cluster=handle["cluster"])
            handle["sky_cost"] = cost.get("cost")
            handle["sky_seconds"] = cost.get("duration")
        except SkyError:
            pass

    def _forget_launch(self, handle: dict) -> None:
        """Stop a launch that has not produced a job yet (so it cannot come up later unwatched)."""
        try:
            self.bridge.call("api_cancel", request_id=handle["request_id"])
        except SkyError:
            pass

    def log_path(self, handle: dict) -> Path:
        return Path(handle["log"])

    def close(self) -> None:
        if self._bridge is not None:
            self._bridge.close()


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except OSError:
        return ""


def _lines(p: Path) -> int:
    try:
        with open(p, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return 0


def _write(p: Path, text: str) -> None:
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


# ---------------------------------------------------------------------- a job's first task
MANAGED_OFFERS = 5  # controller: skypilot — the planner's top offers SkyPilot may choose among


@dataclass(frozen=True)
class Prepared:
    """The SkyPilot side of a launch: the first task, what the job keeps for later attempts
    (``sky``: source, env, secrets — stored apart — and mode), and warnings to show."""

    compiled: object  # compiler.Compiled
    sky: dict
    chosen: list[Offer]
    warnings: list


def prepare(loaded, offers: list[Offer], *, dry_run: bool) -> Prepared:
    """Compile the job's first task (secrets left empty for a dry run: nothing is launched)."""
    from spotrain.launcher.compiler import node_recipe_text, resolve_values
    from spotrain.launcher.source import node_source

    r = loaded.recipe
    mode = r.recovery.controller
    env = resolve_values(r.env, os.environ, "env")
    secrets = (
        resolve_values(r.secrets, os.environ, "secrets")
        if not dry_run
        else {k: v or "" for k, v in r.secrets.items()}
    )
    source = node_source()
    chosen = offers if mode == "skypilot" else offers[:1]
    # every AWS spot offer an attempt may use (the controller picks later ones at run time)
    zones, warnings = ({}, []) if dry_run else aws_zone_names(offers)
    compiled = compile_task(
        r,
        node_recipe_text(loaded),
        chosen[:MANAGED_OFFERS],
        recipe_dir=str(loaded.base_dir),
        source=source,
        task_name=cluster_name(r.name, None),
        run_id=f"{r.name}-dry-run" if dry_run else "job",
        env=env,
        secrets=secrets,
        mode=mode,
        zone_names=zones,
    )
    return Prepared(
        compiled,
        {"source": source.__dict__, "env": env, "secrets": secrets, "mode": mode, "zone_names": zones},
        chosen,
        warnings + list(compiled.warnings),
    )


def aws_zone_names(offers: list[Offer]) -> tuple[dict[str, str], list[str]]:
    """This account's zone name for the zone ID of each AWS spot offer (pinned in the task), and a
    warning when they cannot be had (the task then names the region and SkyPilot picks the zone)."""
    regions = sorted({o.region for o in offers if o.cloud.lower() == "aws" and o.spot and o.zone})
    if not regions:
        return {}, []
    from spotrain.pricing.sources import aws_live

    try:
        return aws_live.zone_names(regions), []
    except (aws_live.LivePriceError, ImportError) as exc:
        return {}, [
            f"AWS spot offers are not pinned to their zone ({exc}); SkyPilot picks the zone in the region"
        ]


def preflight(prepared: Prepared) -> None:
    """Have SkyPilot validate the task and check that a cloud among the offers' is enabled; a
    one-line ``SpotrainError`` otherwise."""
    bridge = Bridge()
    try:
        bridge.call("validate", config=prepared.compiled.config)
        enabled = {c.lower() for c in bridge.call("enabled")["clouds"]}
        clouds = sorted({o.cloud.lower() for o in prepared.chosen})
        if not enabled & set(clouds):
            raise SpotrainError(
                f"SkyPilot has no cloud enabled among {', '.join(clouds)} (enabled: "
                f"{', '.join(sorted(enabled)) or 'none'}) — run `sky check` and set up credentials"
            )
    except SkyError as exc:
        raise SpotrainError(str(exc)) from None
    finally:
        bridge.close()


def managed_offer(offers: list[Offer]) -> Offer:
    """controller: skypilot — the job's single "offer": SkyPilot picks one of ``choices`` and may move
    between them on recovery, so spotrain's ledger bills at the dearest of them (the cap stays safe)
    and notes SkyPilot's own bill for comparison."""
    choices = offers[:MANAGED_OFFERS]
    top = max(choices, key=lambda o: o.hourly)
    return replace(
        top,
        cloud="skypilot",
        region="managed",
        zone="",
        instance=f"any of {len(choices)} offers",
        spot=any(o.spot for o in choices),
        on_demand_hourly=max(o.on_demand_hourly for o in choices),
        choices=tuple(choices),
    )
