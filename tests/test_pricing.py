"""Pricing: catalog reading, GCP host pairing, parameter/FLOP estimates, the planner and its funnel."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

from conftest import tiny_recipe
from spotrain.pricing import accelerators as accel
from spotrain.pricing import catalog, estimate
from spotrain.pricing.planner import PlanError, plan
from spotrain.pricing.sources import skypilot, snapshot, user
from spotrain.pricing.table import OfferTable
from spotrain.recipes.schema import Recipe

FIXTURE = Path(__file__).parent / "fixtures" / "catalog" / "v8"


@pytest.fixture
def fixture_catalog(tmp_path, monkeypatch):
    d = tmp_path / "catalogs" / "v8"
    shutil.copytree(FIXTURE, d)
    monkeypatch.setenv("SPOTRAIN_CATALOG_DIR", str(d))
    monkeypatch.setenv("SPOTRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path / "nosky"))
    return d


def offers(path: Path, cloud: str) -> list[tuple]:
    return skypilot.read_cloud(path / cloud / "vms.csv", cloud, 0).rows


def gpu_recipe(accs, **kw) -> Recipe:
    r = tiny_recipe(resources={"accelerators": accs, **kw.pop("resources", {})}, **kw)
    return Recipe.model_validate(r)


def test_accelerator_names_and_specs():
    assert accel.canonical("a100-80gb") == "A100-80GB"
    assert accel.spec("h100").memory_gb == 80
    chip, n = accel.tpu_chips("tpu-v4-8")
    assert (chip.name, n, chip.kind) == ("tpu-v4", 4, "tpu")
    assert accel.tpu_chips("tpu-v5litepod-16")[1] == 16
    assert accel.suggest("A100-80G")[0] == "A100-80GB"


def test_skypilot_reader_columns_artefacts_and_bad_rows():
    aws = offers(FIXTURE, "aws")
    h100 = [r for r in aws if r[3] == "p5.4xlarge"][0]
    assert math.isnan(h100[9]), "spot above on-demand is no spot offer"
    l4 = [r for r in aws if r[3] == "g6.xlarge" and r[2] == "use1-az2"][0]
    assert (l4[4], l4[5], l4[6], l4[7], l4[8], l4[9]) == ("L4", 1.0, 4.0, 16.0, 0.8048, 0.31)
    res = skypilot.read_cloud(FIXTURE / "vast" / "vms.csv", "vast", 0)
    assert all(math.isnan(r[9]) for r in res.rows), "Vast's 0.00 spot is an artefact"
    assert len(res.rows) == 2
    assert any(
        w.endswith("vms.csv:4: Price 'not-a-price' is not a number — row skipped") for w in res.warnings
    )
    assert any(w.endswith("vms.csv:5: Price 0.0 is not positive — row skipped") for w in res.warnings)


def test_gcp_gpus_are_priced_with_every_host_they_attach_to(tmp_path):
    """A GCP GPU row is paired with every host of its zone it can be attached to (the planner then
    applies the request's cpus/memory, or SkyPilot's default N1 size); a host the catalog prices at
    0.0 because its GPUs carry the price (a4-highgpu-8g + B200) still makes an offer."""
    rows = {(r[3], r[4]): r for r in offers(FIXTURE, "gcp")}
    a100 = rows[("a2-highgpu-1g", "A100")]
    assert a100[8] == pytest.approx(1.0 + 2.67) and a100[9] == pytest.approx(0.4 + 1.1)
    t4 = sorted(r[3] for r in offers(FIXTURE, "gcp") if r[4] == "T4")
    assert t4 == ["n1-highmem-4", "n1-highmem-8", "n1-standard-4"]  # every N1 within T4:1's 48 vCPU / 312 GiB
    assert rows[("n1-highmem-4", "T4")][8] == pytest.approx(0.24 + 0.35)
    # L4 needs a G2 host: both in us-central1-a; none in europe-west4 -> no offer there
    l4 = sorted((r[3], r[2], r[8]) for r in offers(FIXTURE, "gcp") if r[4] == "L4")
    assert l4 == [
        ("g2-standard-4", "us-central1-a", pytest.approx(0.7)),
        ("g2-standard-8", "us-central1-a", pytest.approx(0.8)),
    ]
    assert rows[("TPU-VM", "tpu-v4-8")][8] == 12.88
    assert rows[("e2-micro", "")][4] == ""  # CPU-only offers keep their VM price
    # the planner picks the host: SkyPilot's default for T4:1 (4 vCPUs, 16 GiB) unless the request says
    t = OfferTable.from_rows(offers(FIXTURE, "gcp")).sorted()
    gcp = {"spot": False, "clouds": ["gcp"]}
    assert plan(gpu_recipe(["T4:1"], resources=gcp), t).candidates[0].instance == "n1-highmem-4"
    assert (
        plan(gpu_recipe(["T4:1"], resources={**gcp, "cpus": 8}), t).candidates[0].instance == "n1-highmem-8"
    )
    assert (
        plan(gpu_recipe(["T4:1"], resources={**gcp, "memory_gb": 8}), t).candidates[0].instance
        == "n1-standard-4"
    )
    assert plan(gpu_recipe(["L4:1"], resources=gcp), t).candidates[0].instance == "g2-standard-4"
    assert (
        plan(gpu_recipe(["L4:1"], resources={**gcp, "memory_gb": 32}), t).candidates[0].instance
        == "g2-standard-8"
    )
    # zero-priced GPU-only host
    d = tmp_path / "gcp"
    d.mkdir()
    (d / "vms.csv").write_text(
        (FIXTURE / "gcp" / "vms.csv").read_text()
        + "a4-highgpu-8g,224.0,3968.0,,,,europe-west4,europe-west4-b,0.0,0.0\n"
        + ",,,B200,8,,europe-west4,europe-west4-b,90.216,34.0736\n"
    )
    res = skypilot.read_cloud(d / "vms.csv", "gcp", 0.0)
    b200 = [r for r in res.rows if r[4] == "B200"]
    assert [(r[3], r[8], r[9]) for r in b200] == [("a4-highgpu-8g", 90.216, 34.0736)]
    assert not [r for r in res.rows if r[3] == "a4-highgpu-8g" and r[4] == ""]  # not sold on its own
    assert not [w for w in res.warnings if "a4-highgpu" in w]


@pytest.mark.parametrize(
    "model",
    [
        dict(family="gpt2", layers=2, heads=2, hidden=64, context=128),
        dict(family="gpt2", layers=3, heads=4, hidden=64, context=64, ffn=100, tie_embeddings=False),
        dict(family="llama", layers=2, heads=4, kv_heads=2, hidden=64, context=128),
        dict(family="llama", layers=2, heads=4, hidden=64, context=128, tie_embeddings=False, ffn=96),
        dict(family="bert", layers=2, heads=2, hidden=64, context=128),
    ],
)
def test_analytic_parameter_count_matches_transformers(model):
    from spotrain.recipes.runtime.model import build_model

    r = Recipe.model_validate(
        tiny_recipe(
            model=model, train__objective="mlm" if model["family"] == "bert" else "clm", data__seq_len=32
        )
    )
    m, info = build_model(r, 300, {"eos": 0, "pad": 1, "mask": 2}, Path("."))
    total, non_emb = estimate.param_counts(r.model, 300)
    assert total == info.params
    assert non_emb == info.non_embedding_params


def test_plan_ranks_by_job_cost_and_reports_the_funnel(fixture_catalog):
    cat = catalog.load()
    r = gpu_recipe(["L4:1", "A100:1", "H100:1"], train__steps=2000)
    p = plan(r, cat.table)
    costs = [c.cost for c in p.candidates]
    assert costs == sorted(costs)
    # by job cost, not $/h: Vast's H100 at $1.90/h is 8.2x faster than an L4 at 6.6x the spot price
    best = p.candidates[0]
    assert (best.cloud, best.accelerator, best.spot) == ("vast", "H100", False)
    cheapest_hourly = min(p.candidates, key=lambda c: c.hourly)
    assert cheapest_hourly.accelerator == "L4" and cheapest_hourly.cost > best.cost
    # expected hours: FLOPs / (peak × MFU), plus the hazard overhead on spot
    l4 = [c for c in p.candidates if c.accelerator == "L4" and c.spot][0]
    flops = p.workload.total_flops(1, 2000)
    od_hours = flops / (accel.spec("L4").tflops * 1e12 * 0.35) / 3600
    interval = estimate.checkpoint_interval_hours(r, od_hours)
    assert l4.hours == pytest.approx(od_hours * (1 + 0.1 * (0.1 + interval / 2)))
    assert l4.cost == pytest.approx(l4.hourly * l4.hours)
    assert l4.on_demand_cost == pytest.approx(l4.on_demand_hourly * od_hours)
    # cheapest zone per region: us-east-1 spot is use1-az2 at 0.31
    us = [c for c in p.candidates if c.region == "us-east-1" and c.instance == "g6.xlarge" and c.spot][0]
    assert (us.zone, us.hourly) == ("use1-az2", 0.31)
    labels = [f[0] for f in p.funnel]
    assert labels[0] == "accelerators L4:1, A100:1, H100:1"
    assert all(after <= before for _, before, after in p.funnel)
    # H100 on AWS has no spot offer (spot above on-demand), Vast H100 on-demand only
    assert not any(c.spot and c.accelerator == "H100" for c in p.candidates)


def test_plan_constraints_each_remove_what_they_should(fixture_catalog):
    t = catalog.load().table
    only_gcp = plan(gpu_recipe(["L4:1"], resources={"clouds": ["g*"]}), t)
    assert {c.cloud for c in only_gcp.candidates} == {"gcp"}
    no_eu = plan(gpu_recipe(["L4:1"], resources={"exclude_regions": ["eu-*"]}), t)
    assert not any(c.region.startswith("eu-") for c in no_eu.candidates)
    spot_only = plan(gpu_recipe(["L4:1"], resources={"spot": True}), t)
    assert all(c.spot for c in spot_only.candidates)
    od_only = plan(gpu_recipe(["L4:1"], resources={"spot": False}), t)
    assert not any(c.spot for c in od_only.candidates)
    cheap = plan(gpu_recipe(["L4:1"], resources={"max_hourly_price": 0.5}), t)
    assert all(c.hourly <= 0.5 for c in cheap.candidates)
    two = plan(gpu_recipe(["L4:1"], resources={"num_nodes": 2, "spot": False}), t)
    one = plan(gpu_recipe(["L4:1"], resources={"spot": False, "exclude_clouds": ["vast", "runpod"]}), t)
    assert two.candidates[0].hourly == pytest.approx(2 * one.candidates[0].hourly)
    four = plan(gpu_recipe(["L4:4"]), t)
    assert {c.instance for c in four.candidates} == {"g6.12xlarge"}
    cpu = plan(Recipe.model_validate(tiny_recipe()), t)
    assert all(c.accelerator == "" for c in cpu.candidates)
    assert "e2-micro" not in {c.instance for c in cpu.candidates}, "1 GiB cannot hold torch and the model"


def test_memory_fit_excludes_small_gpus_and_says_why(fixture_catalog):
    t = catalog.load().table
    big = dict(family="gpt2", layers=24, heads=16, hidden=1024, context=1024)  # ~350M: ~29 GB at batch 16
    r = gpu_recipe(
        ["L4:1", "A100:1"],
        model=big,
        data__seq_len=1024,
        data__tokenizer={"type": "bpe", "vocab_size": 50257},
        train__batch_size=16,
    )
    p = plan(r, t)
    assert {c.accelerator for c in p.candidates} == {"A100"}
    fit = [f for f in p.funnel if f[0].startswith("memory fit")][0]
    assert fit[1] > fit[2]
    with pytest.raises(
        PlanError,
        match=r"'memory fit \(needs ~\d+\.\d GB per accelerator\)' removed the last \d+ candidate\(s\) "
        r"— use a larger-memory",
    ):
        plan(
            gpu_recipe(
                ["L4:1"],
                model=big,
                data__seq_len=1024,
                data__tokenizer={"type": "bpe", "vocab_size": 50257},
                train__batch_size=16,
            ),
            t,
        )


def test_no_offer_names_the_constraint_and_unknown_accelerator_suggests(fixture_catalog):
    t = catalog.load().table
    with pytest.raises(PlanError, match="'clouds' removed the last .* widen resources.clouds"):
        plan(gpu_recipe(["H100:1"], resources={"clouds": ["gcp"]}), t)
    with pytest.raises(PlanError, match="'purchase option spot=True' removed the last 2 candidate"):
        plan(gpu_recipe(["H100:1"], resources={"spot": True}), t)
    with pytest.raises(PlanError, match="unknown accelerator 'H10O' — did you mean H100"):
        plan(gpu_recipe(["H10O:1"]), t)


def test_catalog_cache_hits_and_invalidates(fixture_catalog):
    first = catalog.load()
    assert not first.cached and len(first.table) > 0
    second = catalog.load()
    assert second.cached and len(second.table) == len(first.table)
    assert second.cache_path.stat().st_size < 200_000
    f = fixture_catalog / "aws" / "vms.csv"
    f.write_text(f.read_text() + "g6.xlarge,L4,1.0,4.0,16.0,,0.8048,0.2000,ap-south-1,aps1-az1,x86_64\n")
    third = catalog.load()
    assert not third.cached and len(third.table) == len(first.table) + 1
    assert len(list(third.cache_path.parent.glob("offers-*.npz"))) == 1, "old caches are removed"


def test_stale_catalog_warns_with_its_age(fixture_catalog):
    old = 1_700_000_000
    for f in fixture_catalog.glob("*/vms.csv"):
        os.utime(f, (old, old))
    cat = catalog.load()
    msgs = cat.stale(now=old + 30 * 86400)
    assert msgs and all("prices are 30 days old" in m for m in msgs)


def test_builtin_snapshot_when_no_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOTRAIN_CATALOG_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("SPOTRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SKY_RUNTIME_DIR", str(tmp_path / "nosky"))
    cat = catalog.load()
    assert (
        cat.sources[0].name == f"snapshot {snapshot.DATE}"
        and "built-in price snapshot" in cat.sources[0].notice
    )
    assert 0 < len(snapshot.ROWS) <= 60 and len(cat.table) == len(snapshot.ROWS)
    assert all(row[7] > 0 and (row[8] is None or 0 < row[8] < row[7]) for row in snapshot.ROWS)
    p = plan(gpu_recipe(["L4:1", "A10G:1"]), cat.table)
    assert p.candidates and p.candidates[0].source.startswith("snapshot")


def test_user_price_file_overrides_and_adds(fixture_catalog, tmp_path):
    pf = tmp_path / "prices.yaml"
    pf.write_text(
        "offers:\n  - {cloud: aws, region: us-east-1, instance: g6.xlarge, accelerator: L4, count: 1, "
        "vcpus: 4, memory_gb: 16, price: 0.5, spot_price: 0.2}\n  - {cloud: onprem, region: lab, "
        "instance: box1, accelerator: L4, count: 1, vcpus: 16, memory_gb: 64, price: 0.05}\n"
    )
    cat = catalog.load(pf)
    t = cat.table
    mine = [
        o
        for i in range(len(t))
        for o in t.offers(i)
        if (o.cloud, o.instance, o.region) == ("aws", "g6.xlarge", "us-east-1")
    ]
    assert [(o.spot, o.hourly, o.on_demand_hourly, o.source) for o in mine] == [
        (False, 0.5, 0.5, "user"),
        (True, 0.2, 0.5, "user"),
    ]
    p = plan(gpu_recipe(["L4:1"]), t)
    assert (p.candidates[0].cloud, p.candidates[0].hourly) == ("onprem", 0.05)


@pytest.mark.parametrize(
    "body,message",
    [
        (
            "offers:\n  - {cloud: x, region: r, instance: i, price: -1}\n",
            ":2:47: offers[0].price: Input should be greater than 0",
        ),
        (
            "offers:\n  - {cloud: x, region: r, instance: i, price: 1, spot_price: 0}\n",
            "offers[0].spot_price: Input should be greater than 0",
        ),
        (
            "offers:\n  - {cloud: x, region: r, instance: i, price: 1, colour: red}\n",
            "offers[0].colour: Extra inputs are not permitted",
        ),
        ("offers: {}\n", "a price file is a mapping with a list under 'offers:'"),
        ("offers: [\n", "YAML syntax error"),
    ],
)
def test_user_price_file_errors(tmp_path, body, message):
    pf = tmp_path / "p.yaml"
    pf.write_text(body)
    with pytest.raises(
        user.PriceFileError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        user.read(pf)


def test_offer_table_round_trip(tmp_path):
    rows = offers(FIXTURE, "aws") + offers(FIXTURE, "gcp")
    t = OfferTable.from_rows(rows)
    t.save(tmp_path / "t.npz")
    back = OfferTable.load(tmp_path / "t.npz")
    assert [repr(back.offers(i)) for i in range(len(back))] == [
        repr(t.offers(i)) for i in range(len(t))
    ]  # repr: NaN == NaN
    both = OfferTable.concat([t, OfferTable.from_rows(offers(FIXTURE, "vast"))])
    assert both.offers(len(both) - 1)[0].cloud == "vast" and repr(both.offers(0)) == repr(t.offers(0))


def test_concurrent_cache_rebuilds_do_not_collide(fixture_catalog):
    import subprocess
    import sys

    code = "from spotrain.pricing import catalog; print(len(catalog.load().table))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert len({o.strip() for o, _ in outs}) == 1
    assert catalog.load().cached


def _reference_ranking(recipe: Recipe, t: OfferTable) -> list[tuple]:
    """The planner's scoring written row by row (as it was before it was vectorised): every row at
    each purchase option, the cheapest zone per machine (ties: the first zone), ranked by
    (cost, $/h, cloud, region, instance)."""
    nodes, steps = recipe.resources.num_nodes, recipe.train.steps
    w = estimate.workload(recipe, Path("."))
    wanted = {(a.split(":")[0], float(a.split(":")[1])) for a in recipe.resources.accelerators} or {("", 0.0)}
    best: dict[tuple, tuple] = {}
    for i in range(len(t)):
        name, count, vcpus = t.text("accelerator", i), float(t["count"][i]), float(t["vcpus"][i])
        if (name, count) not in wanted:
            continue  # the request's accelerators (or CPU only); nothing else here filters
        if name:
            sp = accel.spec(name)
            chips = accel.tpu_chips(name)[1] if sp.kind == "tpu" else count
            peak = sp.tflops * 1e12 * chips * nodes
        else:
            peak = 50e9 * (vcpus if not math.isnan(vcpus) else 1) * nodes
        devices = chips if name and sp.kind == "tpu" else count
        hours = w.total_flops(max(1, int(devices)) * nodes, steps) / (peak * estimate.DEFAULT_MFU) / 3600
        for spot in (True, False):
            price = float(t["spot_price"][i] if spot else t["price"][i])
            if math.isnan(price):
                continue
            wall = hours
            if spot:
                wall = estimate.spot_hours(
                    hours, estimate.checkpoint_interval_hours(recipe, hours), nodes, estimate.Hazard()
                )
            hourly = price * nodes
            row = (
                hourly * wall,
                hourly,
                t.text("cloud", i),
                t.text("region", i),
                t.text("instance", i),
                spot,
                t.text("zone", i),
            )
            k = (row[2], row[3], row[4], name, count, spot)
            if k not in best or (row[0], row[6]) < (best[k][0], best[k][6]):
                best[k] = row
    return sorted(best.values())


@pytest.mark.parametrize(
    "accs,regions,partial", [([], 3, False), (["L4:1", "T4:1", "A100:8"], 3, False), ([], 200, True)]
)
def test_vectorised_scoring_equals_the_row_by_row_reference(accs, regions, partial):
    """Many zones per machine at tied and untied prices, rows in no particular order (the fallback
    path) and sorted as the catalog stores them: the same offers, estimates and order — read whole,
    and (past 1,024 offers) read as the best few first, which a partial sort orders."""
    import random

    rnd = random.Random(7)
    rows = []
    for cloud in ("aws", "gcp", "azure"):
        for region in (f"r{k}" for k in range(1, regions + 1)):
            for inst, acc, count, vcpus in [
                ("m.small", "", 0.0, 2.0),
                ("m.big", "", 0.0, 16.0),
                ("g.l4", "L4", 1.0, 8.0),
                ("g.t4", "T4", 1.0, 4.0),
                ("g.a100", "A100", 8.0, 96.0),
            ]:
                for zone in ("a", "b", "c"):
                    price = rnd.choice([1.0, 1.5, 2.0])
                    spot = rnd.choice([float("nan"), price / 3, price / 2])
                    rows.append(
                        (
                            cloud,
                            region,
                            f"{region}{zone}",
                            inst,
                            acc,
                            count,
                            vcpus,
                            64.0,
                            price,
                            spot,
                            "t",
                            0.0,
                        )
                    )
    rnd.shuffle(rows)
    r = gpu_recipe(accs) if accs else Recipe.model_validate(tiny_recipe())
    for t in (OfferTable.from_rows(rows), OfferTable.from_rows(rows).sorted()):
        ranked = plan(r, t).candidates
        top = [(c.cost, c.hourly, c.cloud, c.region, c.instance, c.spot, c.zone) for c in ranked[:40]]
        assert (len(ranked._order) < len(ranked)) == partial  # only the best were ordered
        got = [
            (c.cost, c.hourly, c.cloud, c.region, c.instance, c.spot, c.zone) for c in plan(r, t).candidates
        ]
        want = _reference_ranking(r, t)
        assert len(got) == len(want) > 10 and got[:40] == top
        for g, x in zip(got, want):
            assert g[1:] == x[1:] and g[0] == pytest.approx(x[0], rel=1e-12)


def test_multi_node_offers_only_on_clouds_skypilot_launches_several_nodes_on():
    """SkyPilot cannot launch two nodes on Vast or RunPod (MULTI_NODE unsupported there): a
    2-node request skips them even when they are the cheapest, and says why when nothing is left."""
    rows = [
        (cloud, "r1", "", f"{cloud}-8xh100", "H100", 8.0, 64.0, 512.0, price, float("nan"), "t", 0.0)
        for cloud, price in (("vast", 15.0), ("runpod", 18.0), ("aws", 55.0))
    ]
    t = OfferTable.from_rows(rows).sorted()
    one = plan(gpu_recipe(["H100:8"], resources={"spot": False}), t)
    assert one.candidates[0].cloud == "vast"
    two = plan(gpu_recipe(["H100:8"], resources={"spot": False, "num_nodes": 2}), t)
    assert [c.cloud for c in two.candidates] == ["aws"] and two.candidates[0].hourly == 110.0
    assert ("multi-node (2 nodes; SkyPilot launches one node only on runpod, vast)", 3, 1) in two.funnel
    with pytest.raises(PlanError, match="multi-node .* removed the last 2 candidate.* use one node"):
        plan(
            gpu_recipe(["H100:8"], resources={"spot": False, "num_nodes": 2, "clouds": ["vast", "runpod"]}), t
        )


def test_ordered_takes_the_first_entry_with_an_offer_and_zones_filter(fixture_catalog):
    """resources.ordered is a preference list (SkyPilot's `ordered`): the first entry with any offer
    wins even when a later one is cheaper; skipped entries are noted with why. resources.zones
    keeps only those zones."""
    t = catalog.load().table
    cheapest = plan(gpu_recipe(["A100:1", "L4:1"]), t).candidates[0]
    assert cheapest.accelerator == "L4"
    r = Recipe.model_validate(tiny_recipe(resources={"ordered": ["H100:3", "A100:1", "L4:1"]}))
    p = plan(r, t)
    assert {c.accelerator for c in p.candidates} == {"A100"}
    assert p.notes[0] == "resources.ordered: A100:1 is the first with an offer"
    assert p.notes[1].startswith("resources.ordered skipped H100:3: no offer satisfies the request")
    with pytest.raises(PlanError, match="no entry of resources.ordered has an offer — H100:3: .*; H100:5: "):
        plan(Recipe.model_validate(tiny_recipe(resources={"ordered": ["H100:3", "H100:5"]})), t)
    with pytest.raises(ValueError, match="set resources.accelerators .* or resources.ordered .*, not both"):
        Recipe.model_validate(tiny_recipe(resources={"ordered": ["L4:1"], "accelerators": ["L4:1"]}))
    all_l4 = plan(gpu_recipe(["L4:1"]), t).candidates
    zone = next(c.zone for c in all_l4 if c.zone)
    only = plan(gpu_recipe(["L4:1"], resources={"zones": [zone]}), t)
    assert {c.zone for c in only.candidates} == {zone} and len(only.candidates) < len(all_l4)
    with pytest.raises(PlanError, match="'zones' removed the last .* widen resources.zones"):
        plan(gpu_recipe(["L4:1"], resources={"zones": ["nowhere-1a"]}), t)


def test_suspect_prices_are_flagged_and_ranked_only_when_trusted(tmp_path, monkeypatch):
    """A price below a quarter of the median of the same machine's other regions (at least two of
    them) is suspect: `plan` leaves it out and says so in the funnel, `--trust-outliers` ranks it
    (flagged), `catalog info` lists it. A user's own price is never suspect."""
    from spotrain.pricing import outliers
    from spotrain.pricing.planner import Options

    def row(region, price, spot=float("nan"), inst="m8", source="t"):
        return ("azure", region, "", inst, "", 0.0, 8.0, 32.0, price, spot, source, 0.0)

    rows = [row("r1", 0.86, 0.16), row("r2", 0.90, 0.17), row("r3", 0.80, 0.15), row("nz", 0.0898, 0.0166)]
    rows += [row("r1", 1.0, inst="two"), row("cheap", 0.1, inst="two")]  # one other region: no median
    rows += [
        row("a", 1.0, inst="edge"),
        row("b", 1.0, inst="edge"),
        row("c", 0.25, inst="edge"),
    ]  # not below ¼
    t = OfferTable.from_rows(rows)
    found = {(t.text("region", s.row), t.text("instance", s.row), s.column) for s in outliers.find(t)}
    assert found == {("nz", "m8", "price"), ("nz", "m8", "spot_price")}
    t = t.with_numbers(suspect=outliers.flags(t)).sorted()
    r = Recipe.model_validate(tiny_recipe(resources={"clouds": ["azure"]}))
    p = plan(r, t)
    assert "nz" not in {c.region for c in p.candidates}
    label = "suspect prices (below 25% of the median elsewhere; --trust-outliers ranks them)"
    assert (label, 13, 11) in p.funnel  # 9 on-demand + 4 spot prices; both of nz left out
    trusted = plan(r, t, opts=Options(trust_outliers=True))
    best = trusted.candidates[0]
    assert (best.region, best.spot, best.suspect) == ("nz", True, True)
    assert not any(c.suspect for c in trusted.candidates if c.region != "nz")
    # a user's negotiated rate is theirs to trust
    mine = OfferTable.from_rows(rows[:3] + [row("nz", 0.0898, source="user")])
    assert not outliers.flags(mine).any() and outliers.find(mine)


def test_tpu_slices_are_planned_on_one_host_with_per_chip_memory(tmp_path, monkeypatch):
    """Single-host TPU slices are offers like GPUs: priced from the GCP catalog's TPU rows, timed on
    the slice's chips (peak per chip × chips; one data-parallel replica per chip), memory checked per
    chip; pod slices (several hosts) are left out and the funnel says so."""
    d = tmp_path / "v8" / "gcp"
    d.mkdir(parents=True)
    (d / "vms.csv").write_text(
        "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice\n"
        ",,,tpu-v5litepod-8,1,,us-west4,us-west4-a,9.6,2.06\n"
        ",,,tpu-v6e-8,1,,us-east5,us-east5-b,21.6,12.0\n"
        ",,,tpu-v5litepod-16,1,,us-west4,us-west4-a,19.2,4.12\n"
        ",,,tpu-v5litepod-4,1,,us-west4,us-west4-a,4.8,1.03\n"
        ",,,tpu-v4-32,1,,us-central2,us-central2-b,51.52,14.7\n"
    )
    monkeypatch.setenv("SPOTRAIN_CATALOG_DIR", str(tmp_path / "v8"))
    monkeypatch.setenv("SPOTRAIN_HOME", str(tmp_path / "home"))
    t = catalog.load().table
    r = gpu_recipe(["tpu-v5litepod-8", "tpu-v6e-8", "tpu-v5litepod-16", "tpu-v4-32"])
    p = plan(r, t)
    assert {c.accelerator for c in p.candidates} == {"tpu-v5litepod-8", "tpu-v6e-8"}
    assert any(label.startswith("TPU slices on one host") and (b, a) == (4, 2) for label, b, a in p.funnel)
    best = p.candidates[0]
    assert (best.accelerator, best.spot, best.hourly, best.instance) == (
        "tpu-v5litepod-8",
        True,
        2.06,
        "TPU-VM",
    )
    # 8 chips of v5e at 197 TFLOP/s each, one replica per chip: 8x the tokens of one process per step
    w = estimate.workload(r, Path("."))
    od = next(c for c in p.candidates if c.accelerator == "tpu-v5litepod-8" and not c.spot)
    assert od.hours == pytest.approx(
        w.total_flops(8, r.train.steps) / (8 * 197e12 * estimate.DEFAULT_MFU) / 3600
    )
    # per-chip memory: v5e has 16 GB a chip, v6e 32 GB
    big = gpu_recipe(["tpu-v5litepod-8", "tpu-v6e-8"], model={"layers": 24, "hidden": 2048, "heads": 16})
    need = estimate.memory_need_gb(estimate.workload(big, Path(".")), big)
    assert 16 < need < 32
    assert {c.accelerator for c in plan(big, t).candidates} == {"tpu-v6e-8"}
    # two slices on the same "TPU-VM" in one zone are two machines, not two zones of one
    both = plan(gpu_recipe(["tpu-v5litepod-4", "tpu-v5litepod-8"], resources={"spot": True}), t)
    assert sorted(c.accelerator for c in both.candidates) == ["tpu-v5litepod-4", "tpu-v5litepod-8"]
    with pytest.raises(PlanError, match="'TPU slices on one host .*' removed the last 2 candidate"):
        plan(gpu_recipe(["tpu-v5litepod-16", "tpu-v4-32"]), t)
