"""``spotrain tui``: jobs, spend and training curves in one terminal screen (Textual).

Top: every job (status, where it runs, progress, loss, spend against its budget). Below, for the
highlighted job: a summary line (spend, on-demand equivalent, savings, work lost to preemptions,
deadline), the loss curve — against steps or against dollars spent (``x``) — coloured by attempt
(spot green, on-demand yellow, evaluations magenta), cumulative spend against the budget, the
attempts and the newest events. Refreshes every ``refresh`` seconds; ``c`` cancels and ``p``
preempts the highlighted job (each asks to be pressed twice).

Time is a parameter (``clock``) so the screen is reproducible in tests.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static

from spotrain.errors import SpotrainError
from spotrain.jobs.states import Request
from spotrain.jobs.store import Store
from spotrain import units

from . import chart, model

SPOT, ON_DEMAND, EVAL, BUDGET, SPEND = "green", "yellow", "magenta", "red", "cyan"


def money(x: float | None) -> str:
    if x is None:
        return "-"
    return "$0" if x == 0 else units.money(x)


def duration(seconds: float) -> str:
    s = abs(seconds)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400 * 2:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


class ChartView(Static):
    """A chart drawn at whatever size the layout gives it (redrawn on resize)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.series: list[chart.Series] = []
        self.xfmt = self.yfmt = None
        self.empty = "no data yet"

    def show(self, series, title: str, xfmt=None, yfmt=None, empty: str = "no data yet") -> None:
        self.series, self.xfmt, self.yfmt, self.empty = list(series), xfmt, yfmt, empty
        self.border_title = title
        self.refresh()

    def render(self) -> Text:
        w, h = self.content_size.width or 40, self.content_size.height or 8
        kw = {k: v for k, v in (("xfmt", self.xfmt), ("yfmt", self.yfmt)) if v is not None}
        return chart.plot(self.series, max(12, w), max(4, h), empty=self.empty, **kw)


class SpotrainApp(App):
    TITLE = "spotrain"
    CSS = """
    #jobs { height: auto; max-height: 12; }
    #detail { height: 1fr; }
    #summary { height: auto; padding: 0 1; }
    #charts { height: 2fr; min-height: 9; }
    .chart { width: 1fr; height: 1fr; border: round $primary-darken-2; padding: 0 1; }
    #bottom { height: 1fr; min-height: 5; }
    #attempts { width: auto; max-width: 65%; }
    #events { width: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh"),
        Binding("x", "toggle_x", "Loss vs steps/$"),
        Binding("c", "cancel", "Cancel job"),
        Binding("p", "preempt", "Preempt"),
    ]

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        refresh: float = 2.0,
        job_id: int | None = None,
    ):
        super().__init__()
        self.store = store
        self.clock = clock
        self.refresh_s = refresh
        self.selected: int | None = job_id
        self.by_dollars = False
        self._armed: tuple[str, int] | None = None  # an action pressed once, waiting for its confirmation
        self.rows: list[model.JobRow] = []
        self.detail: model.JobDetail | None = None
        self.read = model.EventReader()  # parses only what the event logs gained since the last refresh

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        with Vertical(id="detail"):
            yield Static(id="summary")
            with Horizontal(id="charts"):
                yield ChartView(id="loss", classes="chart")
                yield ChartView(id="spend", classes="chart")
            with Horizontal(id="bottom"):
                yield DataTable(id="attempts", cursor_type="none")
                yield Static(id="events")
        yield Footer()

    def on_mount(self) -> None:
        jobs = self.query_one("#jobs", DataTable)
        jobs.add_columns("id", "name", "status", "where", "att.", "step", "loss", "spend", "budget", "age")
        att = self.query_one("#attempts", DataTable)
        att.add_columns("#", "where", "instance", "purchase", "$/h", "ran", "cost", "ended")
        self.refresh_data()
        if self.refresh_s > 0:
            self.set_interval(self.refresh_s, self.refresh_data)

    # ------------------------------------------------------------------ data
    def refresh_data(self) -> None:
        now = self.clock()
        self.rows = model.job_rows(self.store, self.read)
        table = self.query_one("#jobs", DataTable)
        table.clear()
        for r in self.rows:
            table.add_row(*self._cells(r, now), key=str(r.id))
        total = sum(r.spend for r in self.rows)
        live = sum(not r.terminal for r in self.rows)
        emulated = " (some emulated)" if any(r.emulated for r in self.rows) else ""
        sub = (
            f"{len(self.rows)} job{'' if len(self.rows) == 1 else 's'}, {live} live · spent "
            f"{money(total)}{emulated}"
        )
        sched = model.schedule_summary(self.store, now)
        if sched is not None:
            sub += (
                f" · {sched.active} schedule{'' if sched.active == 1 else 's'}: "
                f"{money(sched.month_committed)}"
                + (f" of {money(sched.monthly_budget)}" if sched.monthly_budget is not None else "")
                + " committed this month"
            )
        self.sub_title = sub
        if not self.rows:
            self.selected = None
        elif self.selected not in {r.id for r in self.rows}:
            self.selected = self.rows[0].id
        if self.selected is not None:
            table.move_cursor(row=table.get_row_index(str(self.selected)), animate=False)
        self._show_detail()

    def _cells(self, r: model.JobRow, now: float) -> list:
        status = Text(
            r.status,
            style={
                "RUNNING": "bold green",
                "SUCCEEDED": "green",
                "PREEMPTED": "yellow",
                "RECOVERING": "yellow",
                "PROVISIONING": "cyan",
                "PENDING": "cyan",
            }.get(r.status, "red" if r.status.startswith(("FAILED", "STOPPED")) else ""),
        )
        step = f"{r.step if r.step is not None else 0}/{r.steps or '?'}"
        loss = f"{r.loss:.3f}" if r.loss is not None else "-"
        spend = money(r.spend) + ("*" if r.emulated else "")
        return [
            r.id,
            r.name,
            status,
            r.placement,
            r.attempts,
            step,
            loss,
            spend,
            money(r.max_cost),
            duration(now - r.created),
        ]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "jobs" or event.row_key is None or event.row_key.value is None:
            return
        job_id = int(event.row_key.value)
        if job_id != self.selected:
            self.selected = job_id
            self._armed = None
            self._show_detail()

    def _show_detail(self) -> None:
        summary = self.query_one("#summary", Static)
        if self.selected is None:
            self.detail = None
            summary.update(Text("No jobs yet — start one with `spotrain launch RECIPE`.", style="dim"))
            self._draw_charts()
            self.query_one("#attempts", DataTable).clear()
            self.query_one("#events", Static).update("")
            return
        self.detail = d = model.job_detail(self.store, self.selected, read=self.read)
        summary.update(self._summary(d, self.clock()))
        self._draw_charts()
        att = self.query_one("#attempts", DataTable)
        att.clear()
        for a in d.attempts:
            end = a.end if a.end is not None else self.clock()
            att.add_row(
                a.number,
                a.where,
                a.instance,
                Text("spot", style=SPOT) if a.spot else Text("on-demand", style=ON_DEMAND),
                money(a.price),
                duration(end - a.start),
                money(a.cost),
                a.end_reason or "running",
            )
        ev = Text(no_wrap=True, overflow="ellipsis")
        for t, kind, msg in reversed(d.events[-30:]):  # newest first: always on screen
            ev.append(clock_time(t) + " ", style="dim")
            ev.append(f"{kind:<11} ", style="bold")
            ev.append(msg + "\n")
        self.query_one("#events", Static).update(ev)

    def _summary(self, d: model.JobDetail, now: float) -> Text:
        r = d.row
        t = Text()
        t.append(f"job {r.id} {r.name}", style="bold")
        t.append(f" · {r.status} · {r.backend}")
        if r.placement != "-":
            t.append(f" · attempt {r.attempts} on {r.placement}")
        if r.step is not None:
            t.append(f" · step {r.step}/{r.steps or '?'}")
        if d.tokens_per_s:
            t.append(f" · {d.tokens_per_s:,.0f} tok/s")
        t.append("\n")
        t.append(f"spent {money(r.spend)}", style="bold")
        if r.max_cost:
            frac = r.spend / r.max_cost
            t.append(f" of {money(r.max_cost)} ({frac:.0%}) ")
            filled = min(20, round(frac * 20))
            t.append("█" * filled, style=BUDGET if frac >= 0.9 else SPEND)
            t.append("░" * (20 - filled), style="dim")
        t.append(f" · on-demand equivalent {money(d.on_demand_equivalent)} · saved {d.savings:.0%}")
        if r.emulated:
            t.append(" · emulated prices (local backend)", style="dim")
        if d.redone_steps:
            t.append(
                f"\nlost to preemptions: {d.redone_steps} steps trained twice, {money(d.redone_cost)}",
                style=ON_DEMAND,
            )
        if r.deadline is not None:
            left = r.deadline - now
            t.append("\n" if not d.redone_steps else " · ")
            t.append(
                f"deadline in {duration(left)}" if left >= 0 else f"deadline passed {duration(left)} ago",
                style="" if left >= 0 or r.terminal else BUDGET,
            )
        return t

    def _draw_charts(self) -> None:
        loss, spend = self.query_one("#loss", ChartView), self.query_one("#spend", ChartView)
        d = self.detail
        if d is None:
            loss.show([], "loss", empty="")
            spend.show([], "spend", empty="")
            return
        spot = {a.number: a.spot for a in d.attempts}
        x = (lambda p: p.spend) if self.by_dollars else (lambda p: p.step)
        series = []
        for n in sorted({p.attempt for p in d.train}):
            pts = [(x(p), p.loss) for p in d.train if p.attempt == n]
            series.append(chart.Series(pts, SPOT if spot.get(n, True) else ON_DEMAND))
        if d.val:
            series.append(chart.Series([(x(p), p.loss) for p in d.val], EVAL))
        loss.show(
            series,
            "loss vs $ spent" if self.by_dollars else "loss vs step",
            xfmt=money if self.by_dollars else (lambda v: f"{v:.0f}"),
        )
        t0 = d.attempts[0].start if d.attempts else d.row.created
        curve = [(t0, 0.0)] + list(d.spend_curve)
        sp = [chart.Series([((t - t0) / 3600, c) for t, c in curve], SPEND)]
        if d.row.max_cost and len(curve) > 1:
            end = (curve[-1][0] - t0) / 3600
            sp.append(chart.Series([(0.0, d.row.max_cost), (end, d.row.max_cost)], BUDGET))
        spend.show(
            sp if len(curve) > 1 else [],
            "spend ($) over hours" + (" · budget in red" if d.row.max_cost else ""),
            xfmt=lambda v: f"{v:.2f} h",
            yfmt=money,
            empty="nothing billed yet",
        )

    # ------------------------------------------------------------------ actions
    def action_refresh(self) -> None:
        self._armed = None
        self.refresh_data()

    def action_toggle_x(self) -> None:
        self.by_dollars = not self.by_dollars
        self._draw_charts()

    def _confirmed(self, action: str, verb: str) -> int | None:
        """The job to act on once ``action`` is pressed twice on it; None (after a prompt) before."""
        if self.selected is None:
            return None
        row = next((r for r in self.rows if r.id == self.selected), None)
        if row is None or row.terminal:
            self.notify(f"job {self.selected} already ended; nothing to {verb}", severity="warning")
            return None
        if self._armed != (action, self.selected):
            self._armed = (action, self.selected)
            self.notify(f"press {action[0]} again to {verb} job {self.selected}", title="confirm")
            return None
        self._armed = None
        return self.selected

    def _request(self, action: str, verb: str) -> None:
        job_id = self._confirmed(action, verb)
        if job_id is None:
            return
        try:
            self.store.request(job_id, Request(action), self.clock())
        except SpotrainError as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"{action} requested for job {job_id}")
        self.refresh_data()

    def action_cancel(self) -> None:
        self._request("cancel", "cancel")

    def action_preempt(self) -> None:
        self._request("preempt", "preempt")
