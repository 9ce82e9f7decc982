"""A small Markov decision process for one job against one spot market, solved by backward
induction; the ``spotrain`` policy reads its decisions from the table.

Model: spot availability is a two-state Markov chain (up → down at rate λ, down → up at rate
μ, per hour). The state is (time left τ, slack s = τ − remaining work, mode, spot up now), on a
grid of ``delta`` hours. Modes: idle, on-demand running, spot running. Each step a mode can
continue, stop (idle), or start another mode; a start spends the restart overhead (slack and
money, and for spot the risk of losing it before it runs). A preemption ends a spot run and
costs ``loss`` hours of work (the expected work since the last checkpoint). Finishing costs
nothing more; running out of slack is priced prohibitively — in production the safety net
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


@lru_cache(maxsize=512)
def table(lam_q: int, mu_q: int, overhead_h: float, loss_h: float, delta: float, T: int, S: int, od_price: float,
          spot_price: float) -> np.ndarray:
    """Best action [τ index, s index, mode, up] as int8."""
    lam, mu = math.exp(lam_q * RATE_STEP), math.exp(mu_q * RATE_STEP)
    stay_up = math.exp(-lam * delta)  # P(up next step | up)
    come_up = 1 - math.exp(-mu * delta)  # P(up next step | down)
    kap = overhead_h / delta  # overhead in grid steps (may be fractional)
    n = max(1, math.ceil(kap - 1e-9))  # a start occupies n whole steps
    pi_up, decay = mu / (lam + mu), math.exp(-(lam + mu) * n * delta)
    p_up_after = (pi_up + (1 - pi_up) * decay, pi_up - pi_up * decay)  # from up, from down
    survive = math.exp(-lam * n * delta)  # spot stays up through its start
    loss = loss_h / delta
    P = int(math.ceil(max(kap, loss))) + 3  # left padding: s < 0 reads BIG
    width = P + S + 1
    V = np.full((T + 1, 3, 2, width), BIG)
    V[0, :, :, P:] = 0.0  # τ = 0 with s ≥ 0: the work is done
    act = np.zeros((T + 1, S + 1, 3, 2), dtype=np.int8)
    s_idx = np.arange(S + 1)
    cod, cs = od_price * delta, spot_price * delta
    start_od_cost, start_spot_cost = od_price * n * delta, spot_price * n * delta

    def at(layer: np.ndarray, m: int, u: int, shift: float) -> np.ndarray:
        lo = int(math.floor(shift))
        fr = shift - lo
        a = layer[m, u, P - lo: P - lo + S + 1]
        if fr <= 1e-12:
            return a
        return (1 - fr) * a + fr * layer[m, u, P - lo - 1: P - lo + S]

    big = np.full(S + 1, BIG)
    # the safety net, as the policy applies it: waiting needs a step plus a restart of slack,
    # keeping spot a restart plus the work at risk, starting spot two restarts (there and back),
    # starting on-demand one; anything else is not an option
    can_wait = s_idx - 1 >= kap - 1e-9
    can_keep_spot = s_idx - loss >= kap - 1e-9
    can_start_spot = s_idx - kap >= kap - 1e-9
    can_start_od = s_idx >= kap - 1e-9
    for t in range(1, T + 1):
        done = s_idx >= t  # remaining work τ − s ≤ 0
        prev = V[t - 1]
        far = V[t - n] if t >= n else None
        for u in (0, 1):
            pu = stay_up if u else come_up
            wait = pu * at(prev, IDLE, 1, 1) + (1 - pu) * at(prev, IDLE, 0, 1)
            run_od = cod + pu * at(prev, OD, 1, 0) + (1 - pu) * at(prev, OD, 0, 0)
            if far is not None:
                q = p_up_after[0 if u else 1]
                start_od = start_od_cost + q * at(far, OD, 1, kap) + (1 - q) * at(far, OD, 0, kap)
                start_spot = (start_spot_cost + survive * at(far, SPOT, 1, kap) + (1 - survive) * at(far, IDLE, 0, kap)) if u else big
            else:
                start_od = start_spot = big
            run_spot = (cs + pu * at(prev, SPOT, 1, 0) + (1 - pu) * at(prev, IDLE, 0, loss)) if u else big
            wait = np.where(can_wait, wait, BIG)
            start_od = np.where(can_start_od, start_od, BIG)
            start_spot = np.where(can_start_spot, start_spot, BIG)
            run_spot = np.where(can_keep_spot, run_spot, BIG)
            for m, (c0, c1, c2) in ((IDLE, (wait, start_od, start_spot)), (OD, (wait, run_od, start_spot)),
                                    (SPOT, (wait, start_od, run_spot) if u else (wait, start_od, start_spot))):
                # argmin of three candidates (wait, on-demand, spot), ties to the earlier one
                b1 = c1 < c0
                v = np.where(b1, c1, c0)
                b2 = c2 < v
                v = np.minimum(np.where(b2, c2, v), BIG)
                v[done] = 0.0
                V[t, m, u, P:] = v
                j = np.where(b2, SPOT_A, np.where(b1, OD_A, WAIT_A)).astype(np.int8)
                j[done] = WAIT_A
                act[t, :, m, u] = j
    act.setflags(write=False)
    return act
