"""Job store operations. Every function takes ``now`` (Unix seconds): time is a parameter.

Money: each billing tick appends a ledger entry (price × seconds / 3600) for the attempt that
ran; a job's spend is ``math.fsum`` of its entries, so nothing is double-counted or dropped,
and Σ attempts = Σ ledger by construction.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from spotrain.errors import SpotrainError
from spotrain.pricing.offer import Offer

from .db import Attempt, Event, Job, LedgerEntry
from .states import EndReason, JobStatus, Request, TransitionError, check_request, check_transition


class JobNotFound(SpotrainError):
    pass


@dataclass
class Store:
    engine: Engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ------------------------------------------------------------------ jobs
    def create_job(
        self,
        *,
        name: str,
        backend: str,
        recipe_yaml: str,
        recipe_dir: str,
        offers: list[Offer],
        options: dict,
        workdir: str,
        max_cost: float | None,
        deadline: float | None,
        now: float,
    ) -> int:
        with self.session() as s, s.begin():
            job = Job(
                name=name,
                status=JobStatus.PENDING.value,
                backend=backend,
                recipe_yaml=recipe_yaml,
                recipe_dir=recipe_dir,
                offers=offers,
                options=options,
                workdir=workdir,
                max_cost=max_cost,
                deadline=deadline,
                created=now,
                updated=now,
                message="",
            )
            s.add(job)
            s.flush()
            s.add(
                Event(
                    job_id=job.id,
                    time=now,
                    kind="created",
                    message=f"job {job.id} created ({name}, backend {backend})",
                    data={},
                )
            )
            return job.id

    def job(self, job_id: int) -> Job:
        with self.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id} — see `spotrain status` for job ids")
            return job

    def jobs(self) -> list[Job]:
        with self.session() as s:
            return list(s.scalars(select(Job).order_by(Job.id)))

    def transition(self, job_id: int, new: JobStatus, now: float, message: str = "") -> None:
        with self.session() as s, s.begin():
            job = s.get(Job, job_id)
            old = JobStatus(job.status)
            if old == new:
                return
            check_transition(old, new)
            job.status, job.updated = new.value, now
            if message or new.is_terminal():
                job.message = message
            if new.is_terminal():
                job.ended = now
            s.add(
                Event(
                    job_id=job_id,
                    time=now,
                    kind="status",
                    message=f"{old.value} → {new.value}" + (f": {message}" if message else ""),
                    data={"from": old.value, "to": new.value},
                )
            )

    def set_job_files(self, job_id: int, *, recipe_yaml: str, workdir: str) -> None:
        """The job's folder and the resolved recipe in it, known once the job has its id."""
        with self.session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(recipe_yaml=recipe_yaml, workdir=workdir))

    def request(self, job_id: int, action: Request, now: float) -> None:
        """A person asks a live job to cancel or preempt (``Request.CANCEL`` / ``PREEMPT``)."""
        if action not in (Request.CANCEL, Request.PREEMPT):
            raise ValueError(f"{action} is the controller's to set")
        with self.session() as s, s.begin():
            job = s.get(Job, job_id)
            if job is None:
                raise JobNotFound(f"no job {job_id} — see `spotrain status` for job ids")
            if JobStatus(job.status).is_terminal():
                raise SpotrainError(f"job {job_id} already ended ({job.status}); nothing to {action.value}")
            try:
                check_request(job.requested, action)
            except TransitionError as exc:
                raise SpotrainError(f"job {job_id}: {exc}") from None
            job.requested = action
            s.add(
                Event(
                    job_id=job_id,
                    time=now,
                    kind="request",
                    message=f"{action.value} requested",
                    data={"action": action.value},
                )
            )

    def set_request(self, job_id: int, old: Request | None, new: Request | None) -> bool:
        """The controller moves the job's request from ``old`` to ``new`` — only if it is still
        ``old`` (a cancel asked meanwhile is not overwritten; the controller sees it next tick)."""
        check_request(old, new)
        with self.session() as s, s.begin():
            cond = Job.requested.is_(None) if old is None else Job.requested == old
            return s.execute(update(Job).where(Job.id == job_id, cond).values(requested=new)).rowcount == 1

    def clear_request(self, job_id: int) -> None:
        """The attempt the request concerned has ended, or the job has."""
        with self.session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(requested=None))

    # ------------------------------------------------------------------ controller lease
    def claim_controller(
        self, job_id: int, pid: int, now: float, stale_after: float, holds_host_lock: bool = False
    ) -> bool:
        """Take over the job's controller lease if it is free or its holder stopped heartbeating —
        or, when the caller holds this host's lock of the job (``holds_host_lock``), if the holder
        ran on this host: it is dead (the OS released its lock), however fresh its last beat."""
        host = socket.gethostname()
        with self.session() as s, s.begin():
            free = (
                (Job.controller_pid.is_(None))
                | (Job.heartbeat < now - stale_after)
                | (Job.controller_pid == pid)
            )
            if holds_host_lock:
                free = free | (Job.controller_host == host)
            res = s.execute(
                update(Job)
                .where(Job.id == job_id)
                .where(free)
                .values(controller_pid=pid, controller_host=host, heartbeat=now)
            )
            return res.rowcount == 1

    def heartbeat(self, job_id: int, pid: int, now: float) -> bool:
        with self.session() as s, s.begin():
            res = s.execute(
                update(Job).where(Job.id == job_id, Job.controller_pid == pid).values(heartbeat=now)
            )
            return res.rowcount == 1

    def release_controller(self, job_id: int, pid: int) -> None:
        with self.session() as s, s.begin():
            s.execute(
                update(Job).where(Job.id == job_id, Job.controller_pid == pid).values(controller_pid=None)
            )

    # ------------------------------------------------------------------ attempts and money
    def start_attempt(self, job_id: int, offer: Offer, backend: str, emulated: bool, now: float) -> int:
        with self.session() as s, s.begin():
            n = s.scalar(select(func.count()).select_from(Attempt).where(Attempt.job_id == job_id)) or 0
            a = Attempt(
                job_id=job_id,
                number=n + 1,
                backend=backend,
                offer=offer,
                cloud=offer.cloud,
                region=offer.region,
                instance=offer.instance,
                spot=offer.spot,
                price=offer.hourly,
                on_demand_price=offer.on_demand_hourly,
                emulated=emulated,
                handle={},
                start=now,
                billed_until=now,
                cost=0.0,
            )
            s.add(a)
            s.flush()
            s.add(
                Event(
                    job_id=job_id,
                    time=now,
                    kind="attempt",
                    message=f"attempt {a.number}: {a.cloud}/{a.region}/{a.instance} "
                    f"{'spot' if a.spot else 'on-demand'} ${a.price:.4f}/h"
                    + (" (emulated)" if emulated else ""),
                    data={"attempt": a.id},
                )
            )
            return a.id

    def attempt(self, attempt_id: int) -> Attempt:
        with self.session() as s:
            return s.get(Attempt, attempt_id)

    def attempts(self, job_id: int) -> list[Attempt]:
        with self.session() as s:
            return list(s.scalars(select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)))

    def current_attempt(self, job_id: int) -> Attempt | None:
        with self.session() as s:
            return s.scalar(
                select(Attempt)
                .where(Attempt.job_id == job_id, Attempt.end.is_(None))
                .order_by(Attempt.number.desc())
            )

    def set_handle(self, attempt_id: int, handle: dict) -> None:
        with self.session() as s, s.begin():
            s.get(Attempt, attempt_id).handle = handle

    def set_steps(self, attempt_id: int, first: int | None, last: int | None) -> None:
        with self.session() as s, s.begin():
            a = s.get(Attempt, attempt_id)
            if first is not None and a.first_step is None:
                a.first_step = first
            if last is not None:
                a.last_step = last

    def bill(self, attempt_id: int, until: float) -> float:
        """Append a ledger entry covering [billed_until, until] of this attempt. Returns its amount."""
        with self.session() as s, s.begin():
            a = s.get(Attempt, attempt_id)
            if until <= a.billed_until:
                return 0.0
            amount = a.price * (until - a.billed_until) / 3600.0
            s.add(
                LedgerEntry(
                    job_id=a.job_id,
                    attempt_id=a.id,
                    start=a.billed_until,
                    end=until,
                    price=a.price,
                    amount=amount,
                )
            )
            a.billed_until = until
            a.cost = a.cost + amount
            return amount

    def end_attempt(self, attempt_id: int, reason: EndReason, exit_code: int | None, now: float) -> None:
        with self.session() as s, s.begin():
            a = s.get(Attempt, attempt_id)
            if a.end is not None:
                return
            a.end, a.end_reason, a.exit_code = now, reason.value, exit_code
            a.cost = math.fsum(
                s.scalars(select(LedgerEntry.amount).where(LedgerEntry.attempt_id == attempt_id))
            )
            s.add(
                Event(
                    job_id=a.job_id,
                    time=now,
                    kind="attempt_end",
                    message=f"attempt {a.number} ended: {reason.value}"
                    + (f" (exit {exit_code})" if exit_code is not None else "")
                    + f", ${a.cost:.6f}",
                    data={"attempt": a.id},
                )
            )

    def spend(self, job_id: int) -> float:
        with self.session() as s:
            return math.fsum(s.scalars(select(LedgerEntry.amount).where(LedgerEntry.job_id == job_id)))

    def ledger(self, job_id: int) -> list[LedgerEntry]:
        with self.session() as s:
            return list(
                s.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job_id).order_by(LedgerEntry.id))
            )

    # ------------------------------------------------------------------ events
    def event(self, job_id: int, kind: str, message: str, now: float, **data) -> None:
        with self.session() as s, s.begin():
            s.add(Event(job_id=job_id, time=now, kind=kind, message=message, data=data))

    def events(self, job_id: int) -> list[Event]:
        with self.session() as s:
            return list(s.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id)))
