"""Spot policies, the trace simulator and the omniscient optimum (issue 6).

Timelines here use one-hour steps, so steps, hours and $/h line up and answers can be worked out
by hand.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spotrain.jobs import traces
from spotrain.jobs.policies import ON_DEMAND, REGISTRY, SPOT, WAIT, Decision, Policy, make, mdp
from spotrain.jobs.policies import optimal as opt
from spotrain.jobs.simulator import simulate
from spotrain.jobs.traces import Timeline

OD, SP = 3.0, 1.0
ONLINE = [p for p in REGISTRY if p not in ("optimal", "policy")]
SAFE = [p for p in ONLINE if REGISTRY[p].deadline_safe]


def tl(up, work, overhead, spot=SP, od=OD, checkpoint=None) -> Timeline:
    up = np.atleast_2d(np.asarray(up, dtype=bool))
    price = np.broadcast_to(np.asarray(spot, dtype=float), up.shape).astype(float)
    return Timeline(
        tuple(f"z{i}" for i in range(up.shape[0])), 3600.0, up, price.copy(), od, work, overhead, checkpoint
    )


class Script(Policy):
    """Follows a fixed list of decisions (for brute force)."""

    def __init__(self, plan):
        self.plan, self.i = plan, 0

    def decide(self, job, at, zones):
        d = self.plan[self.i] if self.i < len(self.plan) else Decision(WAIT)
        self.i += 1
        return d


def brute_force(t: Timeline, deadline: int) -> float:
    zones = t.up.shape[0]
    actions = [Decision(WAIT), Decision(ON_DEMAND, 0)] + [Decision(SPOT, z) for z in range(zones)]
    best = math.inf
    for plan in itertools.product(actions, repeat=deadline):
        r = simulate(Script(plan), t, deadline)
        if r.deadline_met:
            best = min(best, r.cost)
    return best


# ---------------------------------------------------------------------------------------- optimum
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.booleans(), min_size=7, max_size=7),
    st.integers(1, 4),
    st.integers(0, 2),
    st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=7, max_size=7),
)
def test_optimum_equals_brute_force_single_zone(up, work, overhead, prices):
    t = tl(up, work, overhead, spot=prices)
    o = opt.solve(t)
    for deadline in range(1, 8):
        assert o.cost(deadline) == pytest.approx(brute_force(t, deadline), abs=1e-9)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=2, max_size=2),
    st.integers(1, 3),
    st.integers(0, 1),
)
def test_optimum_equals_brute_force_two_zones(up, work, overhead):
    t = tl(up, work, overhead, spot=[[1.0], [1.5]])
    o = opt.solve(t)
    assert o.cost(6) == pytest.approx(brute_force(t, 6), abs=1e-9)


def markov_up(rng, zones, n, p_stay=0.8):
    up = np.empty((zones, n), dtype=bool)
    up[:, 0] = rng.random(zones) < 0.6
    for i in range(1, n):
        stay = rng.random(zones) < p_stay
        up[:, i] = np.where(stay, up[:, i - 1], ~up[:, i - 1])
    return up


timelines = st.builds(
    lambda seed, zones, work, overhead, slack, ck, p: (seed, zones, work, overhead, slack, ck, p),
    st.integers(0, 10**6),
    st.integers(1, 3),
    st.integers(5, 30),
    st.integers(0, 3),
    st.integers(0, 30),
    st.sampled_from([None, 1, 3, 7]),
    st.sampled_from([0.5, 0.8, 0.95]),
)


def make_world(params):
    seed, zones, work, overhead, slack, ck, p = params
    rng = np.random.default_rng(seed)
    deadline = work + overhead + slack
    up = markov_up(rng, zones, deadline + overhead + 1, p)
    prices = rng.uniform(0.5, 1.5, size=up.shape)
    return tl(up, work, overhead, spot=prices, checkpoint=ck), deadline


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines)
def test_no_policy_beats_the_optimum_and_safe_policies_never_miss(params):
    t, deadline = make_world(params)
    best = opt.solve(t).cost(deadline)
    assert math.isfinite(best)  # work + one restart fits: feasible
    for name in ONLINE:
        r = simulate(make(name), t, deadline)
        if r.deadline_met:
            assert r.cost >= best - 1e-9, name
        if name in SAFE:
            assert r.deadline_met, f"{name} missed a feasible deadline"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines)
def test_work_is_conserved_and_every_hour_accounted(params):
    t, deadline = make_world(params)
    for name in ONLINE:
        r = simulate(make(name), t, deadline)
        assert r.work_h == t.work  # a finished run did exactly the job's work
        assert r.spot_h + r.od_h == pytest.approx(r.work_h + r.lost_h + r.restart_h)
        assert r.cost == pytest.approx(
            r.od_h * OD + (r.cost - r.od_h * OD)
        )  # od hours billed at the od price
        if t.checkpoint is None:
            assert r.lost_h == 0


def test_simulation_is_deterministic():
    t, deadline = make_world((7, 2, 20, 1, 10, 3, 0.8))
    a = [simulate(make(n), t, deadline) for n in ONLINE]
    b = [simulate(make(n), t, deadline) for n in ONLINE]
    assert a == b


# ------------------------------------------------------------------------- known answers, by hand
def run(name, t, deadline):
    return simulate(make(name), t, deadline)


def test_spot_always_up():
    t = tl([True] * 10, work=4, overhead=1)
    assert run("on-demand", t, 10).cost == 5 * OD
    for name in ("greedy", "uniform-progress", "eager-next-region", "spotrain"):
        r = run(name, t, 10)
        assert (r.cost, r.finish_h, r.preemptions) == (5 * SP, 5.0, 0), name
    assert opt.solve(t).cost(10) == 5 * SP


def test_spot_never_up():
    t = tl([False] * 20, work=4, overhead=1)
    for name in ("on-demand", "greedy", "uniform-progress", "spotrain"):
        r = run(name, t, 8)
        assert (r.cost, r.deadline_met) == (5 * OD, True), name
    g = run("greedy", t, 8)
    assert g.finish_h == 7  # the paper's T + 2D rule: on-demand once 4 h + 2 restarts no longer fit (t=2)
    e = run("eager-next-region", t, 8)
    assert (e.deadline_met, e.cost, e.finish_h) == (
        False,
        5 * OD,
        13,
    )  # never on-demand: late, finished on on-demand after
    assert opt.solve(t).cost(8) == 5 * OD


def test_optimum_skips_a_short_spot_window_that_greedy_takes():
    # up 2 h, down 2 h, then up: taking the first window costs an extra restart
    t = tl([1, 1, 0, 0] + [1] * 10, work=6, overhead=1)
    for name in ("greedy", "eager-next-region"):
        r = run(name, t, 12)
        assert (r.cost, r.preemptions, r.finish_h) == (8 * SP, 1, 10), name
    o = opt.solve(t)
    assert o.cost(12) == 7 * SP  # wait, then one run of 7 steps
    assert o.cost(10) == 8 * SP  # a deadline of 10 h forces the early window


def test_multi_zone_moves_after_a_preemption():
    # zone 0 up for 3 h then gone; zone 1 always up
    t = tl([[1, 1, 1] + [0] * 20, [1] * 23], work=5, overhead=1)
    assert run("eager-next-region", t, 20).cost == 7 * SP  # 3 h in z0 (2 h of work), restart in z1
    assert run("spotrain", t, 20).cost == 7 * SP
    g = run("greedy", t, 20)  # single-zone: stays in z0 and ends on on-demand
    assert (g.cost, g.deadline_met) == (3 * SP + 4 * OD, True)
    assert opt.solve(t).cost(20) == 6 * SP


def test_checkpoint_interval_loses_work_since_the_last_checkpoint():
    up = [1, 1, 1, 1, 0] + [1] * 10
    free = run("eager-next-region", tl(up, work=6, overhead=0), 15)
    assert (free.cost, free.lost_h, free.finish_h) == (6 * SP, 0, 7)
    ck = run("eager-next-region", tl(up, work=6, overhead=0, checkpoint=3), 15)
    # checkpoint after 3 h of work, 1 h lost at the preemption at t=4
    assert (ck.cost, ck.lost_h, ck.finish_h) == (7 * SP, 1, 8)


def test_uniform_progress_runs_on_demand_when_behind_pace():
    # spot down at the start, deadline tight: UP goes on-demand at once, greedy waits
    t = tl([0, 0, 0] + [1] * 10, work=8, overhead=1)
    up = run("uniform-progress", t, 12)
    assert up.od_h > 0 and up.deadline_met and up.cost > 9 * SP
    g = run("greedy", t, 13)
    # waits 3 h; at t=3 the work plus two restarts (10 h) no longer fits before the deadline, so the
    # paper's T + 2D rule takes on-demand although spot is up: 1 h restart + 8 h on on-demand
    assert (g.od_h, g.cost, g.finish_h) == (9, 9 * OD, 12)
    # an hour less: on-demand an hour earlier (at t=2)
    g12 = run("greedy", t, 12)
    assert (g12.spot_h, g12.od_h, g12.finish_h) == (0, 9, 11)  # T + 2D at t=2: restart, 8 h, done at 11
    assert opt.solve(t).cost(12) == 9 * SP  # the optimum knows spot will stay


# ------------------------------------------------------------------------------- spotrain's table
UP_, DOWN_ = 0, 1  # market states of a one-bucket (two-state Markov) table


def test_mdp_table_decisions_at_the_extremes():
    lam, mu = mdp.quantise_rate(1 / 4), mdp.quantise_rate(1 / 0.25)  # 4 h lifetimes, 15 min outages
    act = mdp.table((lam,), (mu,), (0,), 0.1, 0.0, 0.1, 200, 100, 3.06, 0.97)
    assert act[150, 1, mdp.IDLE, DOWN_] == mdp.OD_A  # slack for one restart only, spot down: on-demand
    assert (
        act[150, 1, mdp.IDLE, UP_] == mdp.OD_A
    )  # not for a spot restart either: a preemption would be fatal
    assert act[150, 0, mdp.OD, UP_] == mdp.OD_A
    assert act[150, 90, mdp.IDLE, DOWN_] == mdp.WAIT_A  # lots of slack, short outages: wait
    assert act[150, 90, mdp.IDLE, UP_] == mdp.SPOT_A
    assert act[150, 90, mdp.OD, UP_] == mdp.SPOT_A  # long lifetimes pay for leaving on-demand
    # rare, short spot windows: stay on on-demand
    act2 = mdp.table(
        (mdp.quantise_rate(1 / 0.1),), (mdp.quantise_rate(1 / 5),), (0,), 0.4, 0.0, 0.1, 200, 100, 3.06, 0.97
    )
    assert act2[150, 90, mdp.OD, UP_] == mdp.OD_A


def _heavy_tailed_spells(seed: int = 0):
    """Most spot windows last minutes, a few last many hours; outages of a quarter to over an
    hour (none short enough to be a blip)."""
    rng = np.random.default_rng(seed)
    up = np.concatenate([rng.exponential(0.1, 300), rng.exponential(10.0, 40)])
    rng.shuffle(up)
    return up, 0.25 + rng.exponential(0.5, up.size)


def test_semi_markov_table_waits_for_a_spot_window_to_prove_itself():
    """With heavy-tailed lifetimes and a 0.4 h restart, on-demand is left for spot only once the
    spot window has lasted a while — a fresh one is likely a blip that would cost two restarts —
    while the two-state chain fitted to the same spells answers the same at every age."""
    up, down = _heavy_tailed_spells()
    T, delta = 400, 0.13
    edges = mdp.age_edges(T)
    assert edges[:5] == (0, 1, 2, 4, 8) and mdp.bucket(0.5, edges) == 0 and mdp.bucket(5, edges) == 3
    uq, dq = mdp.hazards(up, edges, delta), mdp.hazards(down, edges, delta)
    assert uq[0] > uq[-1] + 5  # the hazard of a young window is far higher than an old one's
    act = mdp.table(uq, dq, edges, 0.4, 0.0, delta, T, 32, 3.06, 0.97)
    on_od = act[300, 20, mdp.OD, : len(edges)]  # 39 h left, 2.6 h slack, spot up, by age bucket
    assert on_od[0] == mdp.OD_A and on_od[-1] == mdp.SPOT_A
    assert list(on_od) == sorted(on_od, key=[mdp.OD_A, mdp.SPOT_A].index)  # one switch-over age
    markov = mdp.table(
        (mdp.quantise_rate(up.size / up.sum()),),
        (mdp.quantise_rate(down.size / down.sum()),),
        (0,),
        0.4,
        0.0,
        delta,
        T,
        32,
        3.06,
        0.97,
    )
    assert markov[300, 20, mdp.OD, UP_] in (mdp.OD_A, mdp.SPOT_A)


def test_spotrain_moves_off_on_demand_only_once_the_spot_window_is_old():
    from spotrain.jobs.policies.base import JobView, MarketHistory, Placement, SpellStats, ZoneView

    up, down = _heavy_tailed_spells(1)
    stats = SpellStats(tuple(up * 3600), tuple(down * 3600))
    pol = make("spotrain")
    pol.warm(MarketHistory((stats,), stats))
    step = 300.0
    zones = [ZoneView("z", True, 0.97, 3.06)]
    at = Placement(ON_DEMAND, 0, running_s=3600)
    hours = 0.0
    first_spot = None
    while hours < 4 and first_spot is None:  # spot stays up: the policy is asked every 5 minutes
        job = JobView(48 * 3600, 36 * 3600, 10 * 3600, 40 * 3600 - hours * 3600, 0.4 * 3600, step)
        d = pol.decide(job, at, zones)
        if d.kind == SPOT:
            first_spot = hours
        hours += step / 3600
    assert first_spot is not None and first_spot >= 0.25  # not on the first sight of spot, but within hours


def test_spotrain_learns_from_history():
    from spotrain.jobs.policies.base import MarketHistory, SpellStats

    p = make("spotrain")
    p.warm(
        MarketHistory((SpellStats((7200.0,) * 10, (600.0,) * 10),), SpellStats((7200.0,) * 10, (600.0,) * 10))
    )
    assert p.any_stats.residual(True) == pytest.approx((72000 + 3600) / 11)
    assert p.any_stats.residual(False) == pytest.approx((6000 + 3600) / 11)


def test_hazards_count_a_spell_still_going_on_as_exposure():
    edges = (0, 1, 2, 4)
    ended = mdp.hazards([0.5] * 5, edges, 1.0, prior_weight=1e-6)
    with_open = mdp.hazards([0.5] * 5, edges, 1.0, prior_weight=1e-6, censored_h=[3.5])
    # one more hour, no end (bucket 0 is an hour wide: the predictive rate over it)
    assert ended[0] == mdp.quantise_rate(mdp.predictive_rate(5, 2.5, 1.0)) and with_open[
        0
    ] == mdp.quantise_rate(mdp.predictive_rate(5, 3.5, 1.0))
    # ages 2-4 h: only the open spell reached them, and it has not ended (default prior: a
    # near-zero prior weight would make an unseen age's predictive hazard vanish either way)
    assert mdp.hazards([0.5] * 5, edges, 1.0, censored_h=[3.5])[2] < mdp.hazards([0.5] * 5, edges, 1.0)[2]


def test_predictive_hazard_discounts_rates_seen_little():
    # 2 ends in 4 h: mean 0.5/h; survival of an hour is E[exp(-λ)] over Gamma(2, 4) = (4/5)^2
    r = mdp.predictive_rate(2, 4.0, 1.0)
    assert math.exp(-r) == pytest.approx((4 / 5) ** 2) and r < 0.5
    assert mdp.predictive_rate(2000, 4000.0, 1.0) == pytest.approx(0.5, rel=1e-3)  # much exposure: the mean
    # one window of 3 h, another of 40 h: the 2-4 h bucket's mean rate is 1 end / 3 h of exposure,
    # but two windows are little to go on, and the rate the model uses is lower
    edges = mdp.age_edges(64)
    q = mdp.hazards([3.0, 40.0], edges, 0.5, prior_weight=1e-6)
    k = mdp.bucket(2.0 / 0.5, edges)
    assert q[k] < mdp.quantise_rate(1 / 3.0)


def test_spells_join_windows_across_blips():
    from spotrain.jobs.policies.base import SpellStats
    from spotrain.jobs.policies.spotrain import Spells

    st = Spells()  # up 2 h, blip 1 min, up 3 h, outage 1 h, up 1 h, and now a blip of 2 min going on
    st.add(SpellStats((7200.0, 10800.0, 3600.0), (60.0, 3600.0), current=False, current_s=120.0))
    assert SpellStats((1.0, 3.0), (2.0,), first_up=True).sequence() == [
        (True, 1.0),
        (False, 2.0),
        (True, 3.0),
    ]
    wins, outs, blips, exposure = st.windows(600.0)
    assert wins == [7200.0 + 60 + 10800] and outs == [3600.0] and blips == 1
    assert exposure == pytest.approx(
        7260 + 10800 + 3600
    )  # the open window counts (the blip going on is not one yet)
    assert st.state(600.0) == (True, 3600.0 + 120.0)  # a 2-minute outage may be a blip: the window goes on
    st.observe(False, 600.0)  # still down at 12 minutes: a real outage now
    assert st.state(600.0) == (False, pytest.approx(720.0))
    st.observe(True, 60.0)
    assert st.state(600.0) == (True, 60.0) and st.windows(600.0)[:2] == (
        [18060.0, 3600.0],
        [3600.0, 720.0],
    )  # that window ended


def test_blips_preempt_but_leave_the_window_going_on():
    """Windows of hours broken by blips now and then: after a blip the job restarts spot in the
    same window; where blips come every minute no spot start survives its restart, so the table
    never starts one and never leaves on-demand for spot."""
    T, delta = 400, 0.13
    edges = mdp.age_edges(T)
    rng = np.random.default_rng(0)
    windows, outs = rng.exponential(8.0, 60), rng.exponential(1.0, 60) + delta
    uq, dq = mdp.hazards(windows, edges, delta), mdp.hazards(outs, edges, delta)
    some = mdp.table(
        uq, dq, edges, 0.4, 0.0, delta, T, 30, 3.06, 0.97, mdp.quantise_rate(0.3)
    )  # one every ~3 h
    storm = mdp.table(uq, dq, edges, 0.4, 0.0, delta, T, 30, 3.06, 0.97, mdp.quantise_rate(50.0))
    ups = slice(0, len(edges))
    assert (
        some[300, 25, mdp.IDLE, ups] == mdp.SPOT_A
    ).all()  # 39 h left, 3.25 h slack, at any age of the window
    assert (storm[300, 25, mdp.IDLE, ups] != mdp.SPOT_A).all() and (
        storm[300, 25, mdp.OD, ups] == mdp.OD_A
    ).all()


def test_spotrain_restarts_spot_after_a_blip_in_a_long_window():
    from spotrain.jobs.policies.base import MarketHistory, SpellStats

    # the past: most windows last minutes, some 10 hours — those broken by two 1-minute blips each
    up, down = [], []
    for _ in range(15):
        up += [3 * 3600.0, 4 * 3600.0, 3 * 3600.0, 600.0, 600.0, 600.0]
        down += [60.0, 60.0, 3600.0, 3600.0, 3600.0, 3600.0]
    past = SpellStats(tuple(up), tuple(down[:-1]), current=True, current_s=3 * 3600.0)
    step = 60.0  # the run: spot up 5 h more (8 h into its window), a 1-minute blip, then up to the end
    avail = np.ones(30 * 60, dtype=bool)
    avail[5 * 60] = False
    t = Timeline(("z",), step, avail[None, :], np.full((1, avail.size), SP), OD, 20 * 60, 6, None)
    pol = make("spotrain")
    pol.warm(MarketHistory((past,), past))
    r = simulate(pol, t, 21 * 60)  # 1 h of slack: room for a few 6-minute restarts
    assert (
        r.deadline_met and r.preemptions == 1 and r.launches == 2 and r.od_h == 0
    )  # back on spot, not on-demand


# ------------------------------------------------------------------------------------ trace files
def test_timeline_steps_express_the_overhead(tmp_path):
    f = tmp_path / "z.json"
    f.write_text('{"metadata": {"gap_seconds": 600}, "data": [1, 0, 1, 1], "prices": [0.5, 0.6, 0.7, 0.8]}')
    scn = traces.load_scenarios(f)[0]
    t = traces.timeline(scn, traces.Setting(overhead_h=0.1, work_h=1), start_tick=1, horizon_h=1)
    assert t.step_s * t.overhead == pytest.approx(360, rel=0.2)
    assert t.step_s == 300  # 600 s ticks in halves: 0.1 h = one 300 s step (within 20 %)
    assert t.up[0].tolist() == np.repeat([0, 1, 1, 1, 0, 1], 2).astype(bool).tolist()  # from tick 1, wrapping
    assert t.spot_price[0, 0] == 0.6  # the trace's own price
    t2 = traces.timeline(scn, traces.Setting(overhead_h=0.1, work_h=1, trace_prices=False), 1, 1)
    assert t2.spot_price[0, 0] == 0.9731
    h = traces.history(scn, 3)  # ticks 0-2: up, down, up — the last spell still going on at the start
    assert (
        h.zones[0].up == (600.0,)
        and h.zones[0].down == (600.0,)
        and (h.zones[0].current, h.zones[0].current_s) == (True, 600.0)
    )
    closed = traces.history(scn, 3, open_end=False)  # a market's statistics: every spell finished
    assert closed.zones[0].up == (600.0, 600.0) and closed.zones[0].current is None


def test_spotrain_grid_steps_sets_the_decision_table_resolution():
    from spotrain.jobs.policies.base import JobView, Placement, ZoneView

    job = JobView(8 * 3600, 8 * 3600, 0.0, 10 * 3600, 0.1 * 3600, 60.0)
    zones = [ZoneView("z", True, 0.97, 3.06)]
    for steps in (50, 200):
        p = make("spotrain", grid_steps=steps)
        p.decide(job, Placement(), zones)
        assert p.grid[0] == pytest.approx(10 / steps)  # hours per step: the deadline over the steps
        assert p.grid[1] == steps + 1
    with pytest.raises(ValueError, match="grid_steps=5"):
        make("spotrain", grid_steps=5)


def test_renewal_surrogate_keeps_the_spells_and_loses_their_order():
    """benchmarks/spot_policy_limit.py's surrogate: the same up and down spells, shuffled."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT))
    from benchmarks.spot_policy_limit import renewal

    rng = np.random.default_rng(3)
    avail = np.repeat(np.arange(40) % 2 == 0, rng.integers(1, 30, size=40)).astype(np.int64)
    scn = traces.Scenario("s", ("z",), avail[None, :], np.full((1, avail.size), np.nan), 60.0)

    def spells(a):
        cuts = np.concatenate([[0], np.flatnonzero(np.diff(a)) + 1, [a.size]])
        return [(int(a[i]), int(j - i)) for i, j in zip(cuts[:-1], cuts[1:])]

    before, after = spells(avail), spells(renewal(scn, seed=0).avail[0])
    assert [s for s, _ in after] == [s for s, _ in before]  # up and down still alternate, from the same side
    for side in (0, 1):
        assert sorted(n for s, n in after if s == side) == sorted(n for s, n in before if s == side)
    assert after != before
    assert np.array_equal(renewal(scn, seed=0).avail, renewal(scn, seed=0).avail)  # seeded


def test_known_window_market_sees_the_runs_own_future():
    """benchmarks/spot_policy_limit.py's non-causal bound: spells of the week before the start and of
    the run's own window count; spells after the window do not, nor does the wrap-around."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT))
    from benchmarks.spot_policy_limit import known_window

    gap = 3600.0  # one tick per hour
    # 200 h before the start (only the last 168 h are in the history), a 10 h window, then more
    avail = np.concatenate([np.tile([1, 1, 0], 70)[:200], [1] * 4 + [0] * 2 + [1] * 4, [0] * 7 + [1] * 50])
    scn = traces.Scenario("s", ("z",), avail[None, :].astype(np.int64), np.full((1, avail.size), np.nan), gap)
    past = traces.history(scn, 200)
    m = known_window(scn, 200, 10.0, past)
    assert m.any.current == past.any.current and m.any.current_s == past.any.current_s
    ups, downs = sorted(m.any.up), sorted(m.any.down)
    assert 4 * gap in ups and 2 * gap in downs  # the window's own spells
    assert 7 * gap not in downs and 50 * gap not in ups  # nothing after the window
    assert sum(ups) + sum(downs) == (168 + 10) * gap  # exactly the week before and the window


class Recorder(Policy):
    """Wraps a policy and records, per tick, where the job ran and what the policy decided."""

    def __init__(self, inner):
        self.inner, self.log = inner, []

    def decide(self, job, at, zones):
        d = self.inner.decide(job, at, zones)
        self.log.append((round(job.elapsed_s / 3600), at.kind, d.kind, round(job.remaining_s / 3600, 3)))
        return d


def test_uniform_progress_keeps_on_demand_while_spot_is_down_as_the_paper_does():
    """4 h of work, 12 h deadline, 1 h restarts; spot down for the first 6 h. Worked by hand from the
    paper's rc_cr_threshold ``_step`` (c0 = 4, r0 = 12, d = 1):
    t=0: condition 0 − 0 = 0 (not behind), no spot → nothing;
    t=1: condition 0 − 1·4/12 < 0, no spot → on-demand (restart 1 h);
    t=2..4: on on-demand and spot down → keep it (condition2 also ≥ 0 at t=2..4);
    t=5: 3 h done, condition2 = (5+2)·4/12 − 3 < 0, but spot is down → keep on-demand
         (the variant this replaced went idle here, ahead of pace, and paid a restart later);
    finish at t=6 on on-demand: 5 h × $3."""
    t = tl([0] * 6 + [1] * 6, work=4, overhead=1)
    rec = Recorder(make("uniform-progress"))
    r = simulate(rec, t, 12, policy_sees_deadline=True)
    assert [(tick, d) for tick, _, d, _ in rec.log] == [
        (0, WAIT),
        (1, ON_DEMAND),
        (2, ON_DEMAND),
        (3, ON_DEMAND),
        (4, ON_DEMAND),
        (5, ON_DEMAND),
    ]
    assert rec.log[5][3] == 1.0  # 3 of 4 h done when it decides to keep on-demand with spot down
    assert (r.od_h, r.spot_h, r.cost, r.finish_h, r.deadline_met) == (5, 0, 15.0, 6, True)


def test_greedy_follows_the_papers_t_plus_2d_and_t_plus_d_rules():
    """6 h of work, 10 h deadline, 1 h restarts, spot down throughout. The paper's strawman waits
    while the work plus two restarts fits (ceil(6+2) = 8 < floor(10 − t)), i.e. t = 0 and 1, and
    takes on-demand at t = 2 (8 ≥ 8): a 1 h restart and 6 h of work end at t = 9."""
    t = tl([0] * 10, work=6, overhead=1)
    rec = Recorder(make("greedy"))
    r = simulate(rec, t, 10, policy_sees_deadline=True)
    assert [d for _, _, d, _ in rec.log[:4]] == [WAIT, WAIT, ON_DEMAND, ON_DEMAND]
    assert (r.od_h, r.cost, r.finish_h, r.deadline_met) == (7, 21.0, 9, True)
