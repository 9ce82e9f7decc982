"""The job controller: one detached process per job (``spotrain _controller JOB``).

It holds the job's lease (a heartbeat in the database, plus a file lock on this machine), so a
job is never driven twice; any `spotrain` command restarts a controller whose heartbeat went
stale, and the new one adopts the running attempt instead of starting another.

Each tick it bills the running attempt (a ledger entry), reads progress, injects preemptions
(local backend), enforces the budget and the deadline, carries out cancel/preempt requests,
and when an attempt ends decides the job's next state; after a preemption the recovery
strategy picks the next offer and the new attempt resumes from the newest complete checkpoint.

Budget rule: a graceful stop (SIGTERM → checkpoint → exit) starts when the spend plus the
expected stopping time reaches the cap; if the cap would be passed before the attempt exits,
it is killed, so spend never exceeds the cap by more than one billing tick.

The cap and the deadline also hold without this process: each attempt is told the moment it must
have stopped by (``limits.stop_by``: env at start, a limits file this controller rewrites when the
moment moves) and stops itself there. Each tick touches ``controller.beat`` in the job's folder;
the local backend's runner restarts a controller whose beat went stale, and the scheduler daemon
adopts such jobs too. A relaunch needs at least ``limits.viable_cap`` left of the cap.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from spotrain.paths import heartbeat_stale_s
from spotrain.pricing.offer import Offer
from spotrain.launcher.backends.base import CONTROLLER_BEAT, Backend, ProvisionError, holds_resources
from spotrain.recipes.runtime.events import EventTail
from spotrain.recipes.runtime.train.stop_by import EXIT_KILLED, EXIT_STOPPED, LIMITS_FILE_ENV, STOP_BY_ENV
from spotrain.recipes.schema import Recipe

from . import limits, recovery
from .live_policy import LivePolicy
from .preemption import Injector
from .states import EndReason, JobStatus, Request, TransitionError
from .store import Store


def stop_reserve(prog: dict, tick: float, step_s: float | None = None) -> float:
    """:func:`limits.stop_reserve` with the save and step times the attempt's events show."""
    return limits.stop_reserve(
        prog.get("save_seconds"), step_s if step_s is not None else prog.get("step_seconds"), tick
    )


def error_line(log: Path) -> str:
    try:
        lines = [l.strip() for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    for l in reversed(lines):
        if l.startswith(("error:", "internal error:")) or "Error" in l.split(":")[0]:
            return l
    return lines[-1] if lines else ""


def fold_progress(out: dict, events: list[dict]) -> dict:
    """Newest step, restored checkpoint and checkpoint save time, updated with ``events``."""
    for ev in events:
        kind = ev.get("event")
        if kind == "step":
            out.setdefault("first_step", ev["step"])
            out.setdefault("first_step_time", ev["time"])
            out.update(step=ev["step"], loss=ev["loss"], step_time=ev["time"])
            if out["step"] > out["first_step"]:
                out["step_seconds"] = (out["step_time"] - out["first_step_time"]) / (
                    out["step"] - out["first_step"]
                )
        elif kind == "checkpoint_restored":
            out["restored"] = ev["step"]
        elif kind == "checkpoint_saved":
            out["save_seconds"] = max(out.get("save_seconds", 0.0), ev.get("seconds", 0.0))
            out["saved"] = max(out.get("saved", 0), ev["step"])
    return out


class ProgressReader:
    """:func:`read_progress` kept up incrementally: each call folds in only what an attempt's
    ``events.jsonl`` gained since the last (the controller asks every tick; the file of a
    multi-day job is tens of MB)."""

    def __init__(self) -> None:
        self._by: dict[Path, tuple[EventTail, dict]] = {}

    def __call__(self, workdir: Path) -> dict:
        key = Path(workdir)
        tail, out = self._by.get(key) or (EventTail(key / "events.jsonl"), {})
        events, reset = tail.read()
        if reset:
            out = {}
        self._by[key] = (tail, fold_progress(out, events))
        return dict(out)


def read_progress(workdir: Path) -> dict:
    """Newest step, restored checkpoint and checkpoint save time from an attempt's events.jsonl."""
    return ProgressReader()(workdir)


@dataclass
class Controller:
    store: Store
    backend: Backend
    job_id: int
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    tick: float = 1.0
    pid: int = field(default_factory=os.getpid)
    _waiting_since: float | None = None
    _kill_at: float | None = None
    _last_why: str | None = None
    _teardown_at: dict = field(default_factory=dict)  # attempt id → (tries, next try time)
    progress: ProgressReader = field(default_factory=ProgressReader)

    # ------------------------------------------------------------------ main loop
    def run(self) -> JobStatus | None:
        lock = self._lock()
        before = self.store.job(self.job_id) if lock is not None else None
        if lock is None or not self.store.claim_controller(
            self.job_id, self.pid, self.clock(), heartbeat_stale_s(), holds_host_lock=True
        ):
            return None  # someone else drives this job
        try:
            job = self.store.job(self.job_id)
            if (
                before is not None
                and before.controller_pid not in (None, self.pid)
                and before.heartbeat is not None
            ):
                self.store.event(
                    self.job_id,
                    "adopt",
                    f"controller {before.controller_pid} stopped heartbeating "
                    f"{self.clock() - before.heartbeat:.0f} s ago; this one ({self.pid}) takes over and "
                    "bills the gap",
                    self.clock(),
                )
            self.recipe = Recipe.model_validate(yaml.safe_load(job.recipe_yaml))
            self.opts = job.options
            self.grace = float(self.opts.get("grace", 120))
            self.injector = Injector.from_options(
                {**self.opts, "nodes": self.recipe.resources.num_nodes}, job.created
            )
            self.backend.on_wait = lambda: self.store.heartbeat(self.job_id, self.pid, self.clock())
            self.live = (
                LivePolicy.for_job(self.recipe, job, self.backend.emulated, self.tick)
                if self.recipe.recovery.policy
                else None
            )
            self.beat = Path(job.workdir) / CONTROLLER_BEAT
            while True:
                now = self.clock()
                if not self.store.heartbeat(self.job_id, self.pid, now):
                    return None  # lease lost to another controller
                self._touch_beat()
                held = self._teardown(now)  # clusters of ended attempts whose teardown failed: again
                job = self.store.job(self.job_id)
                if JobStatus(job.status).is_terminal():
                    if not held:
                        return JobStatus(job.status)
                    self.sleep(self.tick)  # a finished job's controller stays until its clusters are gone
                    continue
                attempt = self.store.current_attempt(self.job_id)
                if attempt is None:
                    self._between_attempts(job, now)
                else:
                    self._watch(job, attempt, now)
                job = self.store.job(self.job_id)
                if JobStatus(job.status).is_terminal() and not self._teardown(self.clock()):
                    return JobStatus(job.status)
                self.sleep(self.tick)
        finally:
            self.backend.close()  # e.g. stops a SkyPilot API server this controller started
            self.store.release_controller(self.job_id, self.pid)
            if lock is not None:
                lock.close()

    def _touch_beat(self) -> None:
        """The file heartbeat attempts watch (they cannot all reach the database)."""
        try:
            self.beat.touch()
        except OSError:
            pass

    def _lock(self):
        from spotrain.pricing.catalog import spotrain_home

        d = spotrain_home() / "locks"
        d.mkdir(parents=True, exist_ok=True)
        fh = open(d / f"job-{self.job_id}.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None
        return fh

    # ------------------------------------------------------------------ between attempts
    def _between_attempts(self, job, now: float) -> None:
        status = JobStatus(job.status)
        if job.requested in (Request.CANCEL, Request.STOPPING_CANCEL):
            return self._end(JobStatus.CANCELLED, now, "cancelled")
        if status == JobStatus.PREEMPTED:
            self.store.transition(self.job_id, JobStatus.RECOVERING, now)
        if job.deadline is not None and now >= job.deadline:
            return self._end(JobStatus.STOPPED_DEADLINE, now, "deadline reached before the job finished")
        spend = self.store.spend(self.job_id)
        if job.max_cost is not None and spend >= job.max_cost:
            return self._end(JobStatus.STOPPED_BUDGET, now, f"budget ${job.max_cost:g} spent (${spend:.6f})")
        attempts = self.store.attempts(self.job_id)
        max_restarts = self.recipe.recovery.max_restarts
        restarts = (
            sum(1 for a in attempts if a.end_reason != EndReason.SWITCHED.value) - 1
        )  # policy moves are not restarts
        if attempts and restarts >= max_restarts:
            return self._end(
                JobStatus.FAILED_NO_RESOURCE, now, f"recovery.max_restarts ({max_restarts}) reached"
            )
        history = [a.offer for a in attempts]
        spot_ok = self.injector.spot_available(now)
        if self.live is not None:
            offer, why = self.live.next_offer(self.store, job, attempts, None, now, spot_ok)
            what = why.split(" (")[0]  # log a decision when it changes, not every tick's slack
            if offer is None and what != self._last_why:
                self.store.event(self.job_id, "policy", why, now)
            self._last_why = what
        else:
            offer = recovery.choose(self.recipe.recovery.strategy, job.offers, history, spot_ok)
        if offer is None:
            if self._waiting_since is None:
                self._waiting_since = now
                self.store.event(self.job_id, "waiting", "no capacity for the chosen strategy; waiting", now)
            if now - self._waiting_since > self.recipe.recovery.max_wait_minutes * 60:
                self._end(
                    JobStatus.FAILED_NO_RESOURCE,
                    now,
                    f"no capacity for {self.recipe.recovery.max_wait_minutes:g} min",
                )
            return None
        self._waiting_since = None
        if job.max_cost is not None:
            done = max((a.last_step or 0) for a in attempts) if attempts else 0
            need = limits.viable_cap(
                self.recipe, offer, self.backend.name, self.tick, steps_left=self.recipe.train.steps - done
            )
            if job.max_cost - spend < need:
                return self._end(
                    JobStatus.STOPPED_BUDGET,
                    now,
                    f"budget ${job.max_cost:g}: the ${max(job.max_cost - spend, 0):.6f} left cannot pay for "
                    f"another attempt's start-up, a checkpoint interval and a stop (${need:.6f} at "
                    f"${offer.hourly:.4f}/h; spent ${spend:.6f})",
                )
        self._provision(job, offer, [offer] + [o for o in job.offers if o.key != offer.key], now)

    def _provision(self, job, offer: Offer, fallbacks: list[Offer], now: float) -> None:
        self.store.transition(self.job_id, JobStatus.PROVISIONING, now)
        tried = []
        for o in fallbacks:
            attempt_id = self.store.start_attempt(
                self.job_id, o, self.backend.name, self.backend.emulated, now
            )
            n = self.store.attempt(attempt_id).number
            workdir = Path(job.workdir) / "attempts" / str(n)
            self.store.set_handle(attempt_id, {"dir": str(workdir)})
            limit = limits.stop_by(
                job.max_cost, job.deadline, self.store.spend(self.job_id), now, o.hourly, self.tick
            )
            env = {"SPOTRAIN_JOB_ID": str(self.job_id), "SPOTRAIN_ATTEMPT": str(n)}
            if limit is not None:
                env[STOP_BY_ENV] = repr(limit.at)
            if self.backend.shares_files:  # the attempt can read a file this controller rewrites
                workdir.mkdir(parents=True, exist_ok=True)
                limits.write_limits(workdir / limits.LIMITS_FILE, limit)
                env[LIMITS_FILE_ENV] = str(workdir / limits.LIMITS_FILE)
            try:
                handle = self.backend.provision(
                    job_id=self.job_id,
                    attempt=n,
                    offer=o,
                    recipe_path=Path(job.workdir) / "recipe.yaml",
                    workdir=workdir,
                    env={**env, **self.opts.get("attempt_env", {}).get(str(n), {})},
                )
            except ProvisionError as exc:
                tried.append(f"{o.place} ({exc})")
                self.store.end_attempt(attempt_id, EndReason.LOST, None, self.clock())
                continue
            handle.setdefault("grace", self.grace)
            if limit is not None:
                handle.update(stop_by=limit.at, stop_reason=limit.reason)
            self.store.set_handle(attempt_id, handle)
            self.store.transition(self.job_id, JobStatus.RUNNING, self.clock())
            return
        self._end(
            JobStatus.FAILED_NO_RESOURCE, self.clock(), "every offer failed to provision: " + "; ".join(tried)
        )

    def _provision_failed(self, job, attempt, st, now: float) -> None:
        """An offer turned out unobtainable after an asynchronous launch: try the next untried one."""
        o = attempt.offer
        self._release(attempt)
        self.store.end_attempt(attempt.id, EndReason.LOST, None, self.clock())
        what = o.place
        self.store.event(
            self.job_id, "provision_failed", f"{what}: {st.provision_error}", now, attempt=attempt.id
        )
        if st.error_kind in ("rejected", "unreachable"):  # no other offer fares better
            return self._end(JobStatus.FAILED_SETUP, self.clock(), st.provision_error)
        self.store.transition(
            self.job_id, JobStatus.RECOVERING, self.clock(), f"{what} could not be provisioned"
        )
        if st.error_kind == "no_cloud":
            return self._end(JobStatus.FAILED_NO_RESOURCE, self.clock(), st.provision_error)
        # the offers that failed since the last attempt that ran
        failed = []
        for a in reversed(self.store.attempts(self.job_id)):
            if a.end_reason != EndReason.LOST.value or a.first_step is not None:
                break
            failed.append(a)
        tried_keys = {recovery.offer_key(a.offer) for a in failed}
        rest = [x for x in job.offers if recovery.offer_key(x) not in tried_keys]
        if not rest:
            reasons = {
                e.data.get("attempt"): e.message
                for e in self.store.events(self.job_id)
                if e.kind == "provision_failed"
            }
            tried = [reasons.get(a.id, a.offer.place) for a in reversed(failed)]
            return self._end(
                JobStatus.FAILED_NO_RESOURCE,
                self.clock(),
                "every offer failed to provision: " + "; ".join(tried),
            )
        self._provision(job, rest[0], rest, self.clock())

    # ------------------------------------------------------------------ watching an attempt
    def _watch(self, job, attempt, now: float) -> None:
        handle = attempt.handle or {}
        if not any(k in handle for k in ("pid", "exit_file", "cluster", "managed")):
            # died between recording the attempt and starting it: nothing runs, start again
            self.store.end_attempt(attempt.id, EndReason.LOST, None, now)
            self._recover(job, now, "attempt never started")
            return
        before = json.dumps(handle, sort_keys=True)
        self.backend.sync(handle)
        st = self.backend.state(handle)
        # an attempt that ended while no controller watched is billed up to its end, not to now
        self.store.bill(attempt.id, now if st.running or st.ended_at is None else min(now, st.ended_at))
        if st.running:
            self._move_stop_by(job, attempt, handle, now)
        if json.dumps(handle, sort_keys=True) != before:
            self.store.set_handle(attempt.id, handle)
        prog = self.progress(Path(handle["dir"]))
        if prog.get("step") is not None:
            self.store.set_steps(attempt.id, prog.get("first_step"), prog["step"])
        if st.provision_error is not None:
            return self._provision_failed(job, attempt, st, now)
        if st.recoveries is not None and st.recoveries > int(handle.get("imported", 0)):
            return self._import_recovery(job, attempt, handle, st.recoveries, now)
        if not st.running:
            return self._finished(job, attempt, st, now)
        requested = job.requested
        if requested == Request.CANCEL:
            requested = self._begin_stop(attempt, requested, "cancel", now)
        elif requested == Request.PREEMPT:
            requested = self._begin_preempt(attempt, requested, now, "preempt requested")
        elif attempt.spot and requested is None and self.injector.due(now, attempt.start):
            requested = self._begin_preempt(attempt, requested, now, "spot capacity reclaimed (injected)")
        margin = stop_reserve(
            prog, self.tick
        )  # exceeds the hard-kill window, so the graceful stop comes first
        stopping = requested is not None and requested.stopping
        if job.max_cost is not None:
            spend = self.store.spend(self.job_id)
            if not stopping and spend + attempt.price * margin / 3600 >= job.max_cost:
                requested = self._begin_stop(attempt, requested, "budget", now)
            elif spend + 2 * attempt.price * self.tick / 3600 > job.max_cost:
                self._kill(attempt, now, f"budget ${job.max_cost:g} reached before the attempt stopped")
                if not stopping:
                    requested = self._request(requested, Request.STOPPING_BUDGET)
            stopping = requested is not None and requested.stopping
        if job.deadline is not None and now + margin >= job.deadline and not stopping:
            requested = self._begin_stop(attempt, requested, "deadline", now)
        if self.live is not None and requested is None and prog.get("step") is not None:
            offer, why = self.live.next_offer(
                self.store,
                job,
                self.store.attempts(self.job_id),
                attempt,
                now,
                self.injector.spot_available(now),
            )
            if offer is None or not recovery._same(offer, attempt.offer):
                self._preempt(attempt)
                self._request(requested, Request.SWITCHING)
                self._kill_at = now + self.grace
                self.store.event(
                    self.job_id, "switch", f"{why}: checkpoint, then move", now, attempt=attempt.id
                )
        if self._kill_at is not None and now >= self._kill_at:
            self._kill(attempt, now, f"grace period of {self.grace:g}s over")

    def _move_stop_by(self, job, attempt, handle: dict, now: float) -> None:
        """Keep the attempt's stop-by moment where the cap and deadline put it now (they move when
        a cap is changed; billing alone does not move it)."""
        if not self.backend.shares_files:
            return
        a = self.store.attempt(attempt.id)
        limit = limits.stop_by(
            job.max_cost, job.deadline, self.store.spend(self.job_id), a.billed_until, a.price, self.tick
        )
        at = None if limit is None else limit.at
        if (at is None) != (handle.get("stop_by") is None) or (
            at is not None and abs(at - handle["stop_by"]) > 0.5 * self.tick
        ):
            limits.write_limits(Path(handle["dir"]) / limits.LIMITS_FILE, limit)
            handle.update(stop_by=at, stop_reason=None if limit is None else limit.reason)

    def _request(self, old: Request | None, new: Request) -> Request | None:
        """Move the job's request to ``new``; what it is now (a person's cancel asked meanwhile wins)."""
        try:
            return (
                new
                if self.store.set_request(self.job_id, old, new)
                else self.store.job(self.job_id).requested
            )
        except (
            TransitionError
        ):  # what it became meanwhile outranks this move (a stop is not turned into a switch)
            return old

    def _preempt(self, attempt) -> None:
        handle = dict(attempt.handle or {})
        self.backend.preempt(handle)
        if handle != attempt.handle:
            self.store.set_handle(attempt.id, handle)

    def _begin_preempt(self, attempt, old: Request | None, now: float, why: str) -> Request | None:
        self._preempt(attempt)
        self._kill_at = now + self.grace
        self.store.event(
            self.job_id, "preempt", f"{why}: SIGTERM sent, {self.grace:g}s grace", now, attempt=attempt.id
        )
        return self._request(old, Request.PREEMPTING)

    def _begin_stop(self, attempt, old: Request | None, reason: str, now: float) -> Request | None:
        self._preempt(attempt)
        self._kill_at = now + self.grace
        self.store.event(
            self.job_id, "stop", f"stopping for {reason}: checkpoint, then exit", now, attempt=attempt.id
        )
        return self._request(old, Request.stop(reason))

    def _kill(self, attempt, now: float, why: str) -> None:
        self.backend.kill(attempt.handle)
        self._kill_at = None
        self.store.event(self.job_id, "kill", f"SIGKILL: {why}", now, attempt=attempt.id)

    def _import_recovery(self, job, attempt, handle: dict, recoveries: int, now: float) -> None:
        """The backend recovered the job itself (SkyPilot managed jobs): record it as we would our own —
        the attempt ends preempted, a new one starts on the same terms, every second stays billed."""
        self.store.bill(attempt.id, now)
        # the same managed job goes on in the next attempt: this one holds nothing of its own to tear down
        self.store.set_handle(attempt.id, {**handle, "released": now, "continued_in_next_attempt": True})
        self.store.end_attempt(attempt.id, EndReason.PREEMPTED, None, now)
        why = f"SkyPilot recovered the managed job (recovery {recoveries})"
        for status in (JobStatus.PREEMPTED, JobStatus.RECOVERING, JobStatus.PROVISIONING):
            self.store.transition(self.job_id, status, now, why if status == JobStatus.PREEMPTED else "")
        new_id = self.store.start_attempt(
            self.job_id, attempt.offer, self.backend.name, self.backend.emulated, now
        )
        n = self.store.attempt(new_id).number
        workdir = Path(job.workdir) / "attempts" / str(n)
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "attempt.log").touch()
        self.store.set_handle(
            new_id,
            {**handle, "imported": recoveries, "dir": str(workdir), "log": str(workdir / "attempt.log")},
        )
        self.store.transition(self.job_id, JobStatus.RUNNING, now)

    def _teardown(self, now: float) -> bool:
        """Retry the teardown of every ended attempt that still holds a cluster (30 s, doubling to
        5 min between tries; billed until it is gone). True while any is still up."""
        held = False
        for a in self.store.attempts(self.job_id):
            if a.end is None or not holds_resources(a.handle or {}):
                continue
            tries, at = self._teardown_at.get(
                a.id, (1 if (a.handle or {}).get("release_error") else 0, 0.0)
            )  # the one at the end failed
            if now >= at:
                self._release(a)
                a = self.store.attempt(a.id)
                if holds_resources(a.handle or {}):
                    tries += 1
                    wait = min(30.0 * 2 ** max(tries - 2, 0), 300.0)
                    self._teardown_at[a.id] = (tries, now + wait)
                    self.store.event(
                        self.job_id,
                        "teardown_failed",
                        f"{a.handle['cluster']} is still up (teardown try {tries}: "
                        f"{a.handle.get('release_error', 'no answer')}); trying again in {wait:.0f} s",
                        now,
                        attempt=a.id,
                    )
                    held = True
                else:
                    self._teardown_at.pop(a.id, None)
                    if tries:
                        self.store.event(
                            self.job_id,
                            "teardown",
                            f"{a.handle['cluster']} torn down after {tries + 1} tries",
                            now,
                            attempt=a.id,
                        )
            else:
                held = True
        return held

    def _release(self, attempt, ended_at: float | None = None) -> None:
        """Free the attempt's resources (a cloud cluster) and bill up to the moment they were gone
        (``ended_at`` when the backend knows the attempt's end and nothing else stays up)."""
        handle = dict(attempt.handle or {})
        before = json.dumps(handle, sort_keys=True)
        self.backend.release(handle)
        if json.dumps(handle, sort_keys=True) != before:
            self.store.set_handle(attempt.id, handle)
            if handle.get("sky_cost") is not None:
                self.store.event(
                    self.job_id,
                    "sky_cost",
                    f"SkyPilot bills ${handle['sky_cost']:.6f} for {handle['cluster']} "
                    f"({handle.get('sky_seconds') or 0:.0f} s)",
                    self.clock(),
                    attempt=attempt.id,
                )
        self.store.bill(attempt.id, self.clock() if ended_at is None else min(self.clock(), ended_at))

    def _finished(self, job, attempt, st, now: float) -> None:
        self._kill_at = None
        self._release(attempt, st.ended_at)
        now = max(now, self.clock())
        requested = job.requested
        code = st.exit_code
        log = Path(attempt.handle.get("log", ""))
        if code == 0:
            self.store.end_attempt(attempt.id, EndReason.SUCCEEDED, code, now)
            return self._end(JobStatus.SUCCEEDED, now, "")
        if requested is not None and requested.stopping:
            reason = requested.reason
            status, end = {
                "cancel": (JobStatus.CANCELLED, EndReason.CANCELLED),
                "budget": (JobStatus.STOPPED_BUDGET, EndReason.BUDGET),
                "deadline": (JobStatus.STOPPED_DEADLINE, EndReason.DEADLINE),
            }[reason]
            self.store.end_attempt(attempt.id, end, code, now)
            spend = self.store.spend(self.job_id)
            return self._end(status, now, f"stopped for {reason} at ${spend:.6f}")
        if code in (EXIT_STOPPED, EXIT_KILLED) and (attempt.handle or {}).get("stop_reason"):
            reason = attempt.handle["stop_reason"]
            status, end = {
                "budget": (JobStatus.STOPPED_BUDGET, EndReason.BUDGET),
                "deadline": (JobStatus.STOPPED_DEADLINE, EndReason.DEADLINE),
            }[reason]
            self.store.end_attempt(attempt.id, end, code, now)
            how = "stopped itself" if code == EXIT_STOPPED else "was ended by its watchdog"
            return self._end(
                status,
                now,
                f"the attempt {how} at its {reason} stop-by moment; spent "
                f"${self.store.spend(self.job_id):.6f}",
            )
        if requested == Request.SWITCHING:
            self.store.end_attempt(attempt.id, EndReason.SWITCHED, code, now)
            self.store.clear_request(self.job_id)
            self.store.transition(self.job_id, JobStatus.RECOVERING, now, "the spot policy moves the job")
            return None
        if requested == Request.PREEMPTING:
            self.store.end_attempt(attempt.id, EndReason.PREEMPTED, code, now)
            self.store.clear_request(self.job_id)
            self.store.transition(self.job_id, JobStatus.PREEMPTED, now)
            return None
        if code == 2:
            self.store.end_attempt(attempt.id, EndReason.SETUP_FAILED, code, now)
            return self._end(JobStatus.FAILED_SETUP, now, error_line(log))
        if code is None or code in (-9, -15, 137, 143):
            self.store.end_attempt(attempt.id, EndReason.LOST, code, now)
            self._recover(job, now, "the attempt's process vanished (node lost)")
            return None
        self.store.end_attempt(attempt.id, EndReason.CRASHED, code, now)
        return self._end(JobStatus.FAILED, now, error_line(log) or f"exit code {code}")

    def _recover(self, job, now: float, why: str) -> None:
        status = JobStatus(self.store.job(self.job_id).status)
        if status in (JobStatus.RUNNING, JobStatus.PROVISIONING):
            self.store.transition(
                self.job_id,
                JobStatus.PREEMPTED if status == JobStatus.RUNNING else JobStatus.RECOVERING,
                now,
                why,
            )

    def _end(self, status: JobStatus, now: float, message: str) -> None:
        self.store.transition(self.job_id, status, now, message)
        self.store.clear_request(self.job_id)
