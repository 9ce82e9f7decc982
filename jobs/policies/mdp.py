"""A small Markov decision process for one job against one spot market, solved by backward
induction; the ``spotrain`` policy reads its decisions from the table.

Market: spot availability is a semi-Markov process. Its state is (spot up or down, age of the
current spell, in buckets that double in length); each spell ends each step with the hazard of
its age bucket, estimated from the spells observed so far (``hazards``). Spot lifetimes and
outages are heavy-tailed — a spot that has just come back often vanishes within minutes, one
that has run for hours tends to run on — and with costly restarts that is what separates a
window worth moving to from one that is not; a memoryless two-state chain cannot tell them
apart (it is the special case of one bucket a side).

Job: the state is (time left τ, slack s = τ − remaining work, mode, market state), on a grid of
``delta`` hours. Modes: idle, on-demand running, spot running. Each step a mode can continue,
stop (idle), or start another mode; a start spends the restart overhead (slack and money, and
for spot the risk of losing it before it runs). A preemption ends a spot run and costs ``loss``
hours of work (the expected work since the last checkpoint). Outages shorter than a step
(blips) are not spells of their own: they preempt spot runs at a constant rate inside a window
whose age goes on. Finishing costs nothing more;
running out of slack is priced prohibitively — in production the safety net
(``Policy.must_commit``) guarantees the deadline anyway.

The value depends on (τ, s) only, not on when the job started, so one table serves a whole job
and, cached by its quantised parameters, every job with the same market statistics.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

IDLE, OD, SPOT = 0, 1, 2  # modes
WAIT_A, OD_A, SPOT_A = 0, 1, 2  # actions
BIG = 1e9
RATE_STEP = 0.2  # rates are quantised on a log grid of this step (22 %)


def quantise_rate(per_hour: float) -> int:
    return int(round(math.log(max(per_hour, 1e-4)) / RATE_STEP))


def age_edges(T: int) -> tuple[int, ...]:
    """Bucket start ages in grid steps: 0, 1, 2, 4, 8, ... below T (the last bucket is open)."""
    edges, e = [0, 1], 2
    while e < T:
        edges.append(e)
        e *= 2
    return tuple(edges)


def bucket(age_steps: float, edges: tuple[int, ...]) -> int:
    k = 0
    while k + 1 < len(edges) and age_steps >= edges[k + 1]:
        k += 1
    return k


def predictive_rate(ends: float, exposure_h: float, width_h: float) -> float:
    """The constant rate whose survival over ``width_h`` hours equals the posterior predictive
    survival of a Gamma(``ends``, ``exposure_h``) rate: (1 + w/b)^-a = exp(-r·w). Below the
    posterior mean a/b, and the more so the less exposure backs it: uncertain rates make spells
    a mixture, which outlasts any single one of its rates."""
    w = max(width_h, 1e-9)
    return ends / w * math.log1p(w / exposure_h)


def hazards(
    lengths_h,
    edges: tuple[int, ...],
    delta: float,
    prior_mean_h: float = 1.0,
    prior_weight: float = 1.0,
    censored_h=(),
) -> tuple[int, ...]:
    """Quantised hazard rate (per hour, ``quantise_rate``) of each age bucket: spells that ended
    in the bucket over the hours spells spent in it. ``censored_h``: spells still going on, which
    add exposure but no end. Each bucket is pulled towards the rate of the bucket before it by
    ``prior_weight`` spells' worth of pseudo-exposure (the first towards a spell of
    ``prior_mean_h``), so ages never seen keep the tail of those that were. The rate given is the
    posterior predictive one (``predictive_rate``): an age seen little is not taken at its mean."""
    arr = np.asarray(lengths_h, dtype=float)
    cen = np.asarray(censored_h, dtype=float)
    out = []
    rate = 1.0 / prior_mean_h
    for k, a_steps in enumerate(edges):
        a = a_steps * delta
        b = edges[k + 1] * delta if k + 1 < len(edges) else math.inf
        exposure = float(np.clip(arr - a, 0.0, b - a).sum()) + float(np.clip(cen - a, 0.0, b - a).sum())
        ends = float(((arr >= a) & (arr < b)).sum()) if arr.size else 0.0
        pseudo = prior_weight / rate  # hours of exposure at the prior rate that make prior_weight ends
        rate = (ends + prior_weight) / (
            exposure + pseudo
        )  # the posterior mean, which the next bucket's prior takes
        out.append(
            quantise_rate(
                predictive_rate(
                    ends + prior_weight, exposure + pseudo, b - a if b < math.inf else max(a, delta)
                )
            )
        )
    return tuple(out)


def _chain(up_q: tuple[int, ...], down_q: tuple[int, ...], edges: tuple[int, ...], delta: float):
    """One-step transition matrix over (up buckets..., down buckets...) and the up mask."""
    ku, kd = len(up_q), len(down_q)
    K = ku + kd
    M = np.zeros((K, K))
    for side, qs, base, other in ((True, up_q, 0, ku), (False, down_q, ku, 0)):
        for k, q in enumerate(qs):
            i = base + k
            h = 1 - math.exp(-math.exp(q * RATE_STEP) * delta)
            M[i, other] += h  # the spell ends: the other side's first bucket
            width = (edges[k + 1] - edges[k]) if k + 1 < len(edges) else 0
            adv = 1.0 / width if width else 0.0
            M[i, i] += (1 - h) * (1 - adv)
            if adv:
                M[i, i + 1] += (1 - h) * adv
    up = np.zeros(K, dtype=bool)
    up[:ku] = True
    return M, up


@lru_cache(maxsize=32)
def table(
    up_q: tuple[int, ...],
    down_q: tuple[int, ...],
    edges: tuple[int, ...],
    overhead_h: float,
    loss_h: float,
    delta: float,
    T: int,
    S: int,
    od_price: float,
    spot_price: float,
    blip_q: int | None = None,
) -> np.ndarray:
    """Best action [τ index, s index, mode, availability state] as int8. Availability states are
    the up age buckets (``edges``, hazards ``up_q``) then the down ones (``down_q``); with one
    bucket a side (``edges=(0,)``) the market is a plain two-state Markov chain.

    ``blip_q``: the quantised rate of blips — outages shorter than one step inside a spot
    window. A blip preempts a running spot instance (and a spot start) but the window goes on
    at its age: the job is idle with spot up again, free to restart there."""
    M, up = _chain(up_q, down_q, edges, delta)
    K = len(up)
    pb = 0.0 if blip_q is None else 1 - math.exp(-math.exp(blip_q * RATE_STEP) * delta)
    kap = overhead_h / delta
    n = max(1, math.ceil(kap - 1e-9))
    Mn = np.linalg.matrix_power(M, n)
    # up to up in one step is always the same window; a spot instance survives it without a blip
    Q = np.where(up[:, None] & up[None, :], M, 0.0) * (1 - pb)
    Qn = np.linalg.matrix_power(Q, n)
    Fn = Mn - Qn  # the spot died during its start: where the market is after n steps
    M_up, M_down = np.where(up[None, :], M, 0.0), np.where(~up[None, :], M, 0.0)
    loss = loss_h / delta
    P = int(math.ceil(max(kap, loss))) + 3
    width = P + S + 1
    R = n + 1  # values of the last n + 1 steps are all a step needs: a ring of them keeps memory at O(K·S)
    V = np.full((R, 3, K, width), BIG)
    V[0, :, :, P:] = 0.0
    act = np.zeros((T + 1, S + 1, 3, K), dtype=np.int8)
    s_idx = np.arange(S + 1)
    cod, cs = od_price * delta, spot_price * delta
    start_od_cost, start_spot_cost = od_price * n * delta, spot_price * n * delta

    def at(mat: np.ndarray, shift: float) -> np.ndarray:
        lo = int(math.floor(shift))
        fr = shift - lo
        a = mat[:, P - lo : P - lo + S + 1]
        if fr <= 1e-12:
            return a
        return (1 - fr) * a + fr * mat[:, P - lo - 1 : P - lo + S]

    big = np.full((K, S + 1), BIG)
    down_rows = ~up[:, None]
    can_wait = (s_idx - 1 >= kap - 1e-9)[None, :]
    can_keep_spot = (s_idx - loss >= kap - 1e-9)[None, :]
    can_start_spot = (s_idx - kap >= kap - 1e-9)[None, :]
    can_start_od = (s_idx >= kap - 1e-9)[None, :]
    for t in range(1, T + 1):
        done = s_idx >= t
        prev = V[(t - 1) % R]
        wait = np.where(can_wait, at(M @ prev[IDLE], 1), BIG)
        run_od = cod + at(M @ prev[OD], 0)
        if t >= n:
            far = V[(t - n) % R]
            start_od = np.where(can_start_od, start_od_cost + at(Mn @ far[OD], kap), BIG)
            start_spot = start_spot_cost + at(Qn @ far[SPOT], kap) + at(Fn @ far[IDLE], kap)
            start_spot = np.where(can_start_spot & ~down_rows, start_spot, BIG)
        else:
            start_od = start_spot = big
        run_spot = cs + at(M_down @ prev[IDLE], loss)
        if pb:
            run_spot = run_spot + (1 - pb) * at(M_up @ prev[SPOT], 0) + pb * at(M_up @ prev[IDLE], loss)
        else:
            run_spot = run_spot + at(M_up @ prev[SPOT], 0)
        run_spot = np.where(can_keep_spot & ~down_rows, run_spot, BIG)
        keep_spot = np.where(down_rows, start_spot, run_spot)
        for m, (c0, c1, c2) in (
            (IDLE, (wait, start_od, start_spot)),
            (OD, (wait, run_od, start_spot)),
            (SPOT, (wait, start_od, keep_spot)),
        ):
            b1 = c1 < c0
            v = np.where(b1, c1, c0)
            b2 = c2 < v
            v = np.minimum(np.where(b2, c2, v), BIG)
            v[:, done] = 0.0
            V[t % R, m, :, P:] = v
            j = np.where(b2, SPOT_A, np.where(b1, OD_A, WAIT_A)).astype(np.int8)
            j[:, done] = WAIT_A
            act[t, :, m, :] = j.T
    act.setflags(write=False)
    return act
