"""Job commands: ``status``, ``logs``, ``cancel``, ``preempt``, ``events``, ``cost``, and the
hidden ``_controller`` that runs one job's controller."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click

from . import render


def _store():
    from spotrain.jobs import service

    store = service.open_store()
    service.ensure_controllers(store)
    return store


def _progress(store, job) -> dict:
    from spotrain.jobs.controller import read_progress

    a = store.current_attempt(job.id) or (store.attempts(job.id) or [None])[-1]
    return read_progress(Path(a.handle["dir"])) if a is not None and a.handle.get("dir") else {}


def _total_steps(job) -> int | None:
    import yaml

    try:
        return yaml.safe_load(job.recipe_yaml)["train"]["steps"]
    except (TypeError, KeyError, yaml.YAMLError):
        return None


def stream(store, job_id: int, poll: float = 0.5) -> str:
    """Print status changes and training progress until the job ends; Ctrl-C detaches."""
    from spotrain.jobs.states import JobStatus

    seen_event, last_step = 0, None
    try:
        while True:
            job = store.job(job_id)
            for ev in store.events(job_id):
                if ev.id > seen_event:
                    seen_event = ev.id
                    if ev.kind in (
                        "status",
                        "attempt",
                        "attempt_end",
                        "preempt",
                        "stop",
                        "kill",
                        "waiting",
                        "restart",
                        "adopt",
                    ):
                        click.echo(f"[{time.strftime('%H:%M:%S', time.localtime(ev.time))}] {ev.message}")
            prog = _progress(store, job)
            if prog.get("step") is not None and prog["step"] != last_step:
                last_step = prog["step"]
                total = _total_steps(job)
                click.echo(
                    f"step {prog['step']}{'/' + str(total) if total else ''} loss {prog['loss']:.4f}  "
                    f"{render.money(store.spend(job_id))} so far"
                    + (" (emulated)" if job.backend == "local" else "")
                )
            if JobStatus(job.status).is_terminal():
                if job.message:
                    click.echo(f"{job.status}: {job.message}")
                return job.status
            time.sleep(poll)
    except KeyboardInterrupt:
        click.echo(f"\ndetached; job {job_id} keeps running (spotrain status {job_id})")
        return "DETACHED"


def cost_report(store, job_id: int) -> dict:
    attempts = store.attempts(job_id)
    rows = []
    for a in attempts:
        end = a.end if a.end is not None else a.billed_until
        rows.append(
            {
                "attempt": a.number,
                "cloud": a.cloud,
                "region": a.region,
                "instance": a.instance,
                "spot": bool(a.spot),
                "price_per_hour": a.price,
                "seconds": end - a.start,
                "billed_seconds": a.billed_until - a.start,
                "cost": a.cost,
                "on_demand_cost": a.on_demand_price * (a.billed_until - a.start) / 3600,
                "end_reason": a.end_reason,
                "emulated": bool(a.emulated),
                "steps": [a.first_step, a.last_step],
                "sky_cost": (a.handle or {}).get("sky_cost"),
            }
        )
    total = store.spend(job_id)
    od = math.fsum(r["on_demand_cost"] for r in rows)
    return {
        "job": job_id,
        "attempts": rows,
        "total": total,
        "on_demand_equivalent": od,
        "savings": (1 - total / od) if od > 0 else 0.0,
        "emulated": any(r["emulated"] for r in rows),
    }


def print_cost(store, job_id: int) -> None:
    rep = cost_report(store, job_id)
    rows = [
        [
            r["attempt"],
            f"{r['cloud']}/{r['region']}",
            r["instance"],
            "spot" if r["spot"] else "on-demand",
            render.money(r["price_per_hour"]),
            f"{r['billed_seconds']:.0f} s",
            render.money(r["cost"]),
            r["end_reason"] or "running",
        ]
        for r in rep["attempts"]
    ]
    click.echo(
        render.table(
            rows, ["#", "where", "instance", "purchase", "$/h", "billed", "cost", "ended"], right={0, 4, 5, 6}
        )
    )
    tag = " (emulated)" if rep["emulated"] else ""
    click.echo(
        f"total {render.money(rep['total'])}{tag} over {len(rows)} attempt(s); on-demand equivalent "
        f"{render.money(rep['on_demand_equivalent'])}; savings {rep['savings']:.0%}"
    )
    sky = [r["sky_cost"] for r in rep["attempts"] if r.get("sky_cost") is not None]
    if sky:
        click.echo(
            f"SkyPilot's own bill (sky cost-report) for these clusters: {render.money(math.fsum(sky))}"
        )


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True)
def status(job_id: int | None, as_json: bool) -> None:
    """Jobs and their state, progress and spend (one job with JOB_ID)."""
    from spotrain.jobs.service import unwatched
    from spotrain.launcher.backends.base import holds_resources

    store = _store()
    jobs = [store.job(job_id)] if job_id is not None else store.jobs()
    out = []
    now = time.time()
    for j in jobs:
        prog = _progress(store, j)
        # while no controller bills a running job, the ledger lags: its spend is a lower bound
        out.append(
            {
                "id": j.id,
                "name": j.name,
                "status": j.status,
                "backend": j.backend,
                "attempts": len(store.attempts(j.id)),
                "step": prog.get("step"),
                "steps": _total_steps(j),
                "loss": prog.get("loss"),
                "spend": store.spend(j.id),
                "spend_at_least": unwatched(j, now),
                "max_cost": j.max_cost,
                "created": j.created,
                "message": j.message,
                "emulated": j.backend == "local",
                # clusters of ended attempts whose teardown has not succeeded yet: they still bill
                "clusters_up": [
                    a.handle["cluster"]
                    for a in store.attempts(j.id)
                    if a.end is not None and holds_resources(a.handle or {})
                ],
            }
        )
    if as_json:
        click.echo(json.dumps(out if job_id is None else out[0], indent=2))
        return
    rows = [
        [
            o["id"],
            o["name"],
            o["status"],
            o["attempts"],
            f"{o['step'] or 0}/{o['steps'] or '?'}",
            f"{o['loss']:.3f}" if o["loss"] is not None else "-",
            ("≥" if o["spend_at_least"] else "")
            + render.money(o["spend"])
            + (" (emulated)" if o["emulated"] else ""),
            render.money(o["max_cost"]) if o["max_cost"] else "-",
            render.age(o["created"]),
        ]
        for o in out
    ]
    click.echo(
        render.table(
            rows, ["id", "name", "status", "attempts", "step", "loss", "spend", "budget", "age"], right={0, 3}
        )
    )
    for o in out:
        if o["clusters_up"]:
            click.echo(
                f"job {o['id']} ({o['status']}): cluster(s) still up and billing: "
                f"{', '.join(o['clusters_up'])} — its controller retries the teardown; `sky down` them by "
                "hand if this persists",
                err=True,
            )
    if any(o["spend_at_least"] for o in out):
        click.echo(
            "≥: no controller was billing the job (it died); a new one is adopting it and bills the gap",
            err=True,
        )
    if job_id is not None and out[0]["message"]:
        click.echo(out[0]["message"])


@click.command()
@click.argument("job_id", type=int)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
def logs(job_id: int, follow: bool) -> None:
    """The job's logs, attempt by attempt."""
    from spotrain.jobs.states import JobStatus

    store = _store()
    store.job(job_id)
    printed: dict[int, int] = {}
    while True:
        for a in store.attempts(job_id):
            path = Path(a.handle.get("log", "")) if a.handle else None
            if not path or not path.exists():
                continue
            if a.number not in printed:
                click.echo(f"=== attempt {a.number}: {a.cloud}/{a.region}/{a.instance} ===")
                printed[a.number] = 0
            with open(path, "rb") as fh:
                fh.seek(printed[a.number])
                chunk = fh.read()
            printed[a.number] += len(chunk)
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
        if not follow or JobStatus(store.job(job_id).status).is_terminal():
            return
        time.sleep(0.5)


@click.command()
@click.argument("job_id", type=int)
def cancel(job_id: int) -> None:
    """Stop a job gracefully (checkpoint first) → CANCELLED."""
    from spotrain.jobs.states import Request

    store = _store()
    store.request(job_id, Request.CANCEL, time.time())
    click.echo(f"cancel requested for job {job_id}")


@click.command()
@click.argument("job_id", type=int)
def preempt(job_id: int) -> None:
    """Preempt the job's running attempt like a cloud would (SIGTERM, grace, SIGKILL)."""
    from spotrain.jobs.states import Request

    store = _store()
    store.request(job_id, Request.PREEMPT, time.time())
    click.echo(f"preemption requested for job {job_id}")


@click.command()
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def events(job_id: int, as_json: bool) -> None:
    """The job's event history."""
    store = _store()
    store.job(job_id)
    evs = store.events(job_id)
    if as_json:
        click.echo(
            json.dumps(
                [{"time": e.time, "kind": e.kind, "message": e.message, "data": e.data} for e in evs],
                indent=2,
            )
        )
        return
    for e in evs:
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e.time))}  {e.kind:<12} {e.message}")


@click.command()
@click.argument("job_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True)
def cost(job_id: int | None, as_json: bool) -> None:
    """What a job cost: every attempt with its offer, duration and $; totals and savings."""
    store = _store()
    ids = [store.job(job_id).id] if job_id is not None else [j.id for j in store.jobs()]
    reports = [cost_report(store, i) for i in ids]
    if as_json:
        click.echo(
            json.dumps(
                reports[0]
                if job_id is not None
                else {"jobs": reports, "total": math.fsum(r["total"] for r in reports)},
                indent=2,
            )
        )
        return
    for i in ids:
        click.echo(f"job {i}:")
        print_cost(store, i)
    if job_id is None:
        click.echo(f"all jobs: {render.money(math.fsum(r['total'] for r in reports))}")


@click.command("_controller", hidden=True)
@click.argument("job_id", type=int)
def controller(job_id: int) -> None:
    """(internal) Drive one job until it ends."""
    from spotrain.jobs.controller import Controller
    from spotrain.jobs.service import open_store
    from spotrain.launcher.backends.base import get_backend

    store = open_store()
    job = store.job(job_id)
    Controller(store, get_backend(job.backend), job_id).run()
