"""``spotrain schedule ...`` (retrain a recipe on a trigger under budgets) and ``spotrain scheduler``
(the daemon that fires them)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click

from spotrain.errors import SpotrainError

from . import render


def _store():
    from spotrain.jobs import service

    store = service.open_store()
    service.ensure_controllers(store)
    return store


def _money_opt(v: float | None) -> str:
    return render.money(v) if v is not None else "-"


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts)) if ts else "-"


def _trigger_text(sc) -> str:
    if "cron" in sc.trigger:
        return f"cron '{sc.trigger['cron']}' {sc.timezone}"
    s = sc.trigger["every"]
    return f"every {render.hours(s / 3600) if s >= 60 else f'{s:g} s'}"


@click.group()
def schedule() -> None:
    """Retrain a recipe on a schedule, under budgets per run, per month and in total."""


@schedule.command("add")
@click.argument("file", type=click.Path(path_type=str))
@click.argument("overrides", nargs=-1)
@click.option(
    "--cron",
    default=None,
    help="Five cron fields: MIN HOUR DAY MONTH WEEKDAY (e.g. '0 3 * * 1': Mondays 03:00).",
)
@click.option("--every", default=None, help="Or a fixed interval: 30m, 6h, 1d.")
@click.option("--name", default=None, help="Default: the recipe's name.")
@click.option(
    "--timezone", "tz", default="UTC", show_default=True, help="Of the cron fields and of the budget month."
)
@click.option(
    "--max-cost",
    type=float,
    default=None,
    help="$ cap of each run (also capped by the recipe's budget.max_cost).",
)
@click.option(
    "--monthly-budget",
    type=float,
    default=None,
    help="$ all runs launched in a calendar month may spend together.",
)
@click.option(
    "--total-budget", type=float, default=None, help="$ all runs of this schedule may ever spend together."
)
@click.option("--backend", type=click.Choice(["local", "sky"]), default="local", show_default=True)
@click.option(
    "--allow-overlap",
    is_flag=True,
    help="Start a run even while the previous one still runs (default: skip it).",
)
def add(
    file, overrides, cron, every, name, tz, max_cost, monthly_budget, total_budget, backend, allow_overlap
) -> None:
    """Add a schedule for recipe FILE (checked now; read again at every run)."""
    from spotrain.jobs import schedules, scheduler
    from spotrain.recipes.loader import load_recipe

    trigger = scheduler.parse_trigger(cron, every)
    path = Path(file).expanduser().resolve()
    loaded = load_recipe(str(path), list(overrides))
    if (
        max_cost is None
        and monthly_budget is None
        and total_budget is None
        and loaded.recipe.budget.max_cost is None
    ):
        raise SpotrainError(
            "a schedule spends money unattended: give at least one of --max-cost, --monthly-budget, "
            "--total-budget (or budget.max_cost in the recipe)"
        )
    store = _store()
    now = time.time()
    sid = schedules.add(
        store,
        name=name or loaded.recipe.name,
        recipe_path=str(path),
        overrides=list(overrides),
        backend=backend,
        trigger=trigger,
        timezone=tz,
        max_cost_per_run=max_cost,
        monthly_budget=monthly_budget,
        total_budget=total_budget,
        allow_overlap=allow_overlap,
        now=now,
    )
    sc = schedules.get(store, sid)
    nxt = ", ".join(_when(t) for t in scheduler.next_fires(sc, now, 3))
    click.echo(f"schedule {sid} added ({sc.name}, {_trigger_text(sc)}); next runs: {nxt}")
    if scheduler.daemon_status(now, stale_after=120) is None:
        click.echo(
            "note: no scheduler is running — start one with `spotrain scheduler` (it fires every schedule)"
        )


def _rows(store, now: float) -> list[dict]:
    from spotrain.jobs import schedules, scheduler

    out = []
    for sc in schedules.all_schedules(store):
        m = scheduler.month_summary(store, sc, now)
        hist = schedules.runs(store, sc.id)
        nxt = scheduler.next_fires(sc, now, 1) if sc.enabled else []
        out.append(
            {
                "id": sc.id,
                "name": sc.name,
                "trigger": sc.trigger,
                "timezone": sc.timezone,
                "backend": sc.backend,
                "enabled": bool(sc.enabled),
                "recipe": sc.recipe_path,
                "overrides": sc.overrides,
                "max_cost_per_run": sc.max_cost_per_run,
                "monthly_budget": sc.monthly_budget,
                "total_budget": sc.total_budget,
                "next_run": nxt[0] if nxt else None,
                "runs": m["runs"],
                "live_runs": m["live"],
                "month_committed": m["month"],
                "month_spent": m["spent_month"],
                "total_committed": m["total"],
                "last": (
                    {
                        "time": hist[-1].time,
                        "outcome": hist[-1].outcome,
                        "job": hist[-1].job_id,
                        "message": hist[-1].message,
                    }
                    if hist
                    else None
                ),
                "_text": _trigger_text(sc),
            }
        )
    return out


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """Schedules: trigger, next run, this month's spend against the budgets, the last outcome."""
    from spotrain.jobs import scheduler

    store = _store()
    now = time.time()
    rows = _rows(store, now)
    daemon = scheduler.daemon_status(now, stale_after=120)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "scheduler": daemon,
                    "schedules": [{k: v for k, v in r.items() if k != "_text"} for r in rows],
                },
                indent=2,
            )
        )
        return
    if not rows:
        click.echo(
            "no schedules — add one with `spotrain schedule add RECIPE --cron '0 3 * * 1' --monthly-budget "
            "50`"
        )
        return
    table = [
        [
            r["id"],
            r["name"],
            r["_text"],
            _when(r["next_run"]) if r["enabled"] else "paused",
            r["runs"],
            f"{render.money(r['month_committed'])} / {_money_opt(r['monthly_budget'])}",
            f"{render.money(r['total_committed'])} / {_money_opt(r['total_budget'])}",
            _money_opt(r["max_cost_per_run"]),
            (f"{r['last']['outcome']}" + (f" job {r['last']['job']}" if r["last"]["job"] else ""))
            if r["last"]
            else "-",
        ]
        for r in rows
    ]
    click.echo(
        render.table(
            table,
            [
                "id",
                "name",
                "trigger",
                "next run",
                "runs",
                "month (committed/budget)",
                "total (committed/budget)",
                "per run",
                "last",
            ],
            right={0, 4},
        )
    )
    click.echo("committed = spent by finished runs + the whole cap of live ones")
    if daemon is None:
        click.echo("no scheduler is running — start one with `spotrain scheduler`")


@schedule.command("show")
@click.argument("schedule_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def show(schedule_id: int, as_json: bool) -> None:
    """One schedule and every time it fired: the job it launched and its cap and spend, or why none."""
    from spotrain.jobs import schedules

    store = _store()
    schedules.get(store, schedule_id)
    row = next(r for r in _rows(store, time.time()) if r["id"] == schedule_id)
    hist = []
    for h in schedules.runs(store, schedule_id):
        job = store.job(h.job_id) if h.job_id else None
        hist.append(
            {
                "time": h.time,
                "outcome": h.outcome,
                "job": h.job_id,
                "cap": h.cap,
                "message": h.message,
                "status": job.status if job else None,
                "spend": store.spend(h.job_id) if job else None,
            }
        )
    if as_json:
        click.echo(json.dumps({**{k: v for k, v in row.items() if k != "_text"}, "history": hist}, indent=2))
        return
    click.echo(
        f"schedule {row['id']} {row['name']}: {row['_text']}, {row['backend']} backend, "
        f"{'enabled' if row['enabled'] else 'paused'}; "
        f"recipe {row['recipe']} {' '.join(row['overrides'])}".rstrip()
    )
    click.echo(
        f"budgets: per run {_money_opt(row['max_cost_per_run'])}, month {_money_opt(row['monthly_budget'])} "
        f"(committed {render.money(row['month_committed'])}, spent {render.money(row['month_spent'])}), "
        f"total {_money_opt(row['total_budget'])} (committed {render.money(row['total_committed'])})"
    )
    if row["next_run"]:
        click.echo(f"next run: {_when(row['next_run'])}")
    rows = [
        [
            _when(h["time"]),
            h["outcome"],
            h["job"] or "-",
            h["status"] or "-",
            _money_opt(h["cap"]),
            _money_opt(h["spend"]),
            h["message"],
        ]
        for h in hist
    ]
    click.echo(
        render.table(rows, ["fired", "outcome", "job", "status", "cap", "spent", "why / where"])
        if rows
        else "never fired yet"
    )


@schedule.command("fire")
@click.argument("schedule_id", type=int)
def fire_now(schedule_id: int) -> None:
    """Run the schedule once now, under the same budgets and overlap rule as its trigger."""
    from spotrain.jobs import schedules, scheduler

    store = _store()
    schedules.get(store, schedule_id)
    out = scheduler.fire(schedule_id)
    click.echo(f"{out['outcome']}: {out.get('message', '')}".rstrip(": "))
    if out["outcome"] == "failed":
        raise click.exceptions.Exit(1)


@schedule.command("pause")
@click.argument("schedule_id", type=int)
def pause(schedule_id: int) -> None:
    """Stop firing (running jobs go on)."""
    from spotrain.jobs import schedules

    schedules.set_enabled(_store(), schedule_id, False)
    click.echo(f"schedule {schedule_id} paused")


@schedule.command("resume")
@click.argument("schedule_id", type=int)
def resume(schedule_id: int) -> None:
    """Fire again from the next trigger time."""
    from spotrain.jobs import schedules

    schedules.set_enabled(_store(), schedule_id, True)
    click.echo(f"schedule {schedule_id} resumed")


@schedule.command("remove")
@click.argument("schedule_id", type=int)
def remove(schedule_id: int) -> None:
    """Delete the schedule and its fire history (its jobs and their ledgers stay)."""
    from spotrain.jobs import schedules

    schedules.remove(_store(), schedule_id)
    click.echo(f"schedule {schedule_id} removed")


@click.command()
@click.option(
    "--poll",
    type=click.FloatRange(min=0.5),
    default=30.0,
    show_default=True,
    help="Seconds between re-reads of the schedules (add/pause/remove take effect within this).",
)
@click.option(
    "--misfire-grace",
    default="1h",
    show_default=True,
    help="A run missed while the scheduler was down still starts if it is at most this late (once).",
)
def scheduler(poll: float, misfire_grace: str) -> None:
    """Run the scheduler in the foreground: fire every enabled schedule on its trigger (Ctrl-C stops)."""
    from spotrain.jobs import scheduler as sched
    from spotrain.units import parse_seconds

    grace = parse_seconds(misfire_grace)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    _store()
    sched.run(poll=poll, misfire_grace=grace)
