"""Recovery strategies: which offer the next attempt uses. A small registry of pure functions.

Each takes the ranked offers (the plan at launch), the attempts so far (their offers, newest
last) and whether spot capacity exists now, and returns an offer, or None to wait for capacity.
Event sequences (R = region, s = spot, od = on-demand):

- ``same-region``:  R1s (preempted) → R1s (preempted) → R1s ...; waits while spot is gone.
- ``next-region``:  R1s (preempted) → R2s (preempted) → R3s ...  (SkyPilot's EAGER_NEXT_REGION:
  never on-demand; waits while spot is gone).
- ``on-demand-fallback``: R1s (preempted) → R1od (runs to the end).
- ``failover`` (default): R1s (preempted) → R1s (preempted twice in R1) → R2s ... and on-demand
  as soon as spot capacity is gone or after ``od_after`` preemptions in total.
"""

from __future__ import annotations

from typing import Callable

from spotrain.pricing.offer import Offer

Strategy = Callable[[list[Offer], list[Offer], bool], Offer | None]
REGISTRY: dict[str, Strategy] = {}


def strategy(name: str):
    def deco(fn: Strategy) -> Strategy:
        REGISTRY[name] = fn
        return fn

    return deco


def _spot(offers):
    return [o for o in offers if o.spot]


def _od(offers):
    return [o for o in offers if not o.spot]


def first_offer(offers: list[Offer], spot_available: bool) -> Offer | None:
    """The cheapest offer by estimated cost that can be had now."""
    for o in offers:
        if not o.spot or spot_available:
            return o
    return None


def offer_key(o: Offer) -> tuple:
    return o.key


def _same(a: Offer, b: Offer) -> bool:
    return (a.cloud, a.region, a.instance, a.spot) == (b.cloud, b.region, b.instance, b.spot)


@strategy("same-region")
def same_region(offers, history, spot_available):
    last = history[-1]
    return None if last.spot and not spot_available else last


@strategy("next-region")
def next_region(offers, history, spot_available):
    if not spot_available:
        return None
    spots = _spot(offers)
    if not spots:
        return history[-1]
    used_regions = [(h.cloud, h.region) for h in history]
    for o in spots:
        if (o.cloud, o.region) not in used_regions:
            return o
    # every region tried: go round again starting after the last one
    last = next((i for i, o in enumerate(spots) if _same(o, history[-1])), -1)
    return spots[(last + 1) % len(spots)]


@strategy("on-demand-fallback")
def on_demand_fallback(offers, history, spot_available):
    od = _od(offers)
    return od[0] if od else (history[-1] if spot_available else None)


def make_failover(per_region: int = 2, od_after: int = 3) -> Strategy:
    def failover(offers, history, spot_available):
        preempted = [h for h in history if h.spot]
        if not spot_available or len(preempted) >= od_after:
            return on_demand_fallback(offers, history, spot_available)
        last = history[-1]
        in_region = sum(1 for h in preempted if (h.cloud, h.region) == (last.cloud, last.region))
        if in_region < per_region:
            return last
        return next_region(offers, history, spot_available)

    return failover


REGISTRY["failover"] = make_failover()


def choose(name: str, offers: list[Offer], history: list[Offer], spot_available: bool) -> Offer | None:
    if not history:
        return first_offer(offers, spot_available)
    return REGISTRY[name](offers, history, spot_available)
