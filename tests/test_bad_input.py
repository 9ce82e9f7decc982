"""Bad input gets a one-line error, exit 2, bounded time and memory (issue 18, items 2 and 4-9):
a fuzz of malformed recipes through `recipe validate`, YAML alias bombs and cycles, absurd sizes,
secrets in `recipe show`, inputs that were accepted without complaint, caps that cannot make progress."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, spotrain, tiny_recipe

GOOD = yaml.safe_dump(tiny_recipe(), sort_keys=False)


def alias_bomb(levels: int, width: int) -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n" + GOOD


def malformed(n: int, seed: int = 0) -> list[tuple[str, str | bytes]]:
    """(kind, text) for ``n`` generated broken recipes."""
    rng = random.Random(seed)
    out: list[tuple[str, str | bytes]] = []
    for levels in range(6, 14):  # each expands past the 20,000-node bound (9**5 = 59,049)
        for width in (9, 16, 25):
            out.append(("bomb", alias_bomb(levels, width)))
    out += [
        ("cycle", "data: &a [*a]\n"),
        ("cycle", "x: &a {b: *a}\n" + GOOD),
        ("cycle", "x: &a {<<: *a}\n"),
        ("cycle", "a: &a [&b [*a, *b]]\n"),
    ]
    for depth in (65, 100, 1000, 20000):
        out.append(("deep", "x: " + "[" * depth + "]" * depth + "\n" + GOOD))
        out.append(
            (
                "deep",
                "x:\n"
                + "".join("  " * i + f"k{i}:\n" for i in range(depth if depth < 200 else 200))
                + "  " * 200
                + "v: 1\n",
            )
        )
    out.append(("huge", "x: [" + ",".join(["1"] * 200_000) + "]\n" + GOOD))  # ~400 KB
    out.append(("huge", GOOD + "description: " + "x" * (1 << 20) + "\n"))  # 1 MB
    out.append(("nodes", "x: [" + ",".join(["1"] * 30_000) + "]\n" + GOOD))
    out += [
        ("type", "[1, 2, 3]\n"),
        ("type", "just a string\n"),
        ("type", "null\n"),
        ("type", ""),
        ("tag", "x: !!python/object:os.system ls\n"),
        ("syntax", "name: [unclosed\n"),
        ("syntax", "name: x\n\tdata: y\n"),
        ("syntax", "a: b: c:\n"),
        ("utf8", b"name: \xff\xfe\n"),
        ("dup", GOOD + "name: again\n"),
    ]
    fields = [
        ("train", "steps"),
        ("train", "lr"),
        ("train", "batch_size"),
        ("model", "layers"),
        ("data", "seq_len"),
        ("budget", "max_cost"),
        ("train", "warmup_steps"),
        ("budget", "deadline"),
        ("resources", "num_nodes"),
    ]
    bad_values = ["many", [1], {"a": 1}, "36 hours", -7]  # each is invalid for every field above
    while len(out) < n:
        r = tiny_recipe()
        sec, key = rng.choice(fields)
        value = rng.choice(bad_values)
        if key == "deadline" and value == -7:  # an int is a Unix time to pydantic
            value = "yesterday"
        r.setdefault(sec, {})[key] = value
        if rng.random() < 0.3:
            r[rng.choice(["trian", "modle", "dat"])] = {}
        out.append(("field", yaml.safe_dump(r, sort_keys=False)))
    return out


DRIVER = textwrap.dedent("""
    import contextlib, io, json, resource, signal, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a runaway parse dies here, not the machine
    from spotrain.launcher.cli.app import main
    def alarm(*_):
        raise TimeoutError("over 10 s")
    signal.signal(signal.SIGALRM, alarm)
    for path in sys.argv[1:]:
        err = io.StringIO()
        t0 = time.perf_counter()
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        signal.alarm(10)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                main(["recipe", "validate", path])
            rc = 0
        except SystemExit as e:
            rc = e.code
        except BaseException as e:
            rc = "raised " + type(e).__name__
        signal.alarm(0)
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
        took = time.perf_counter() - t0
        print(json.dumps({"path": path, "rc": rc, "stderr": err.getvalue(), "seconds": took,
                          "rss_growth_kb": growth}), flush=True)
""")


@pytest.mark.slow(20)
def test_fuzzed_malformed_recipes_each_get_one_line_and_exit_2(tmp_path):
    cases = malformed(220)
    assert len(cases) >= 200
    paths = []
    for i, (kind, text) in enumerate(cases):
        p = tmp_path / f"{i:03d}-{kind}.yaml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        paths.append(p)
    res = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**__import__("os").environ, "SPOTRAIN_CATALOG_DIR": str(tmp_path / "no-catalogs")},
    )
    assert res.returncode == 0, res.stderr[-3000:]
    results = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(results) == len(paths)
    for r, (kind, _) in zip(results, cases):
        name = Path(r["path"]).name
        lines = [line for line in r["stderr"].splitlines() if line.strip()]
        problems = [line for line in lines if not line.endswith("recipe(s) invalid")]
        assert r["rc"] == 2, (name, r)
        assert "Traceback" not in r["stderr"] and "internal error" not in r["stderr"], (name, r["stderr"])
        assert problems and all(line.startswith((r["path"], "error:")) for line in problems), (name, lines)
        if kind in ("bomb", "cycle", "deep", "huge", "nodes", "utf8", "syntax"):
            assert len(problems) == 1, (name, problems)  # one line says what is wrong and what to do
        assert r["rss_growth_kb"] < 200_000, (name, r["rss_growth_kb"])  # a few MB, not gigabytes
        assert r["seconds"] < 10, (name, r["seconds"])  # the driver's alarm would have fired


def test_alias_bomb_and_cycles_are_refused_where_they_are(tmp_path):
    from spotrain.recipes import yamlpos

    with pytest.raises(yamlpos.TooComplex, match="aliases expand the document past 20,000 nodes") as e:
        yamlpos.load(alias_bomb(9, 9))
    assert e.value.mark is not None
    with pytest.raises(yamlpos.TooComplex, match="a cycle"):
        yamlpos.load("data: &a [*a]\n")
    with pytest.raises(yamlpos.TooComplex, match="nested more than 64 levels"):
        yamlpos.load("x: " + "[" * 100 + "]" * 100)
    # anchors and merge keys within the bounds still work, positions included
    data, pos = yamlpos.load("base: &b {lr: 0.1, steps: 5}\ntrain:\n  <<: *b\n  steps: 7\n")
    assert data["train"] == {"lr": 0.1, "steps": 7} and pos.keys[("train", "steps")] == (4, 3)
    p = tmp_path / "bomb.yaml"
    p.write_text(alias_bomb(9, 9))
    res = spotrain("recipe", "validate", str(p))
    assert (
        res.returncode == 2 and res.stderr.splitlines()[0].startswith(f"{p}:") and "anchors (&)" in res.stderr
    )
    res = spotrain("recipe", "validate", "recipes/tiny-gpt.yaml", "train.steps=&a [*a]")
    assert (
        res.returncode == 2
        and "override train.steps: an alias refers to the node that contains it" in res.stderr
    )


def test_absurd_sizes_are_one_line_errors():
    res = spotrain("recipe", "validate", "recipes/tiny-gpt.yaml", "model.hidden=12800000000")
    assert (
        res.returncode == 2
        and "training needs ~" in res.stderr
        and "but the largest any offer has is" in res.stderr
    )
    assert "Traceback" not in res.stderr
    res = spotrain("plan", "recipes/tiny-gpt.yaml", "train.steps=10000000000", "--no-live")
    assert (
        res.returncode == 2 and "train.steps: Input should be less than or equal to 100000000" in res.stderr
    )


def test_run_refuses_a_model_that_cannot_fit_here(tmp_path):
    res = spotrain(
        "run",
        "recipes/tiny-gpt.yaml",
        "model.hidden=12800000000",
        "--workdir",
        str(tmp_path / "w"),
        timeout=300,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    err = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "parameters need ~" in err[0] and "make the model smaller" in err[0]


def test_forecast_cost_does_not_grow_with_the_job():
    """A 100-million-step job is forecast as a 24-hour one scaled up: the same number of simulated ticks."""
    from spotrain.jobs import simulator
    from spotrain.jobs import forecast

    calls = []
    real = simulator.simulate

    def counting(pol, tl, steps, **kw):
        r = real(pol, tl, steps, **kw)
        calls.append(steps)
        return r

    forecast.simulate = counting
    try:
        mkt = forecast.hazard_market(forecast.Hazard())
        small = forecast.forecast(24.0, 0.1, 1.0, 3.0, mkt, samples=8)
        grid_small = list(calls)
        calls.clear()
        big = forecast.forecast(24.0 * 10_000, 0.1, 1.0, 3.0, mkt, samples=8)
        assert calls == grid_small  # the same simulation, whatever the size
        assert big.expected_cost == pytest.approx(small.expected_cost * 10_000)
        assert big.expected_hours == pytest.approx(small.expected_hours * 10_000)
    finally:
        forecast.simulate = real


def test_recipe_show_redacts_secrets(tmp_path):
    r = tiny_recipe(secrets={"HF_TOKEN": "hf_s3cr3t", "FROM_SHELL": None})
    p = tmp_path / "r.yaml"
    p.write_text(yaml.safe_dump(r))
    for args in ((), ("--json",)):
        res = spotrain("recipe", "show", str(p), *args)
        assert res.returncode == 0, res.stderr
        assert "hf_s3cr3t" not in res.stdout and "<redacted>" in res.stdout
        shown = json.loads(res.stdout) if args else yaml.safe_load(res.stdout)
        assert shown["secrets"] == {"HF_TOKEN": "<redacted>", "FROM_SHELL": None}


@pytest.mark.parametrize(
    "args, message",
    [
        (["train.steps=50", "train.warmup_steps=100"], "warmup_steps 100 is more than train.steps 50"),
        (["data.sources.-1.paths=[a]"], "list indexes count from 0 (negative ones are not accepted)"),
    ],
)
def test_inputs_accepted_silently_before_are_refused(args, message):
    res = spotrain("recipe", "validate", "recipes/tiny-gpt.yaml", *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr


def test_preempt_every_zero_is_refused(tmp_path):
    res = spotrain(
        "launch",
        "recipes/tiny-gpt.yaml",
        "--preempt-every",
        "0s",
        "--yes",
        "--no-live",
        env={"SPOTRAIN_HOME": str(tmp_path / "home")},
    )
    assert (
        res.returncode == 2
        and "--preempt-every 0s: the mean time between preemptions must be above 0" in res.stderr
    )
    assert not (tmp_path / "home" / "jobs").exists()


def test_launch_refuses_a_cap_that_cannot_make_progress(tmp_path):
    """The issue's case: a cap the planner's estimate fits, below start-up + a checkpoint interval +
    the stop."""
    home = tmp_path / "home"
    res = spotrain(
        "launch",
        "recipes/tiny-gpt.yaml",
        "train.steps=300",
        "budget.max_cost=0.0008",
        "--yes",
        "--detach",
        "--force",
        "--no-live",
        env={"SPOTRAIN_HOME": str(home)},
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert (
        "budget.max_cost $0.0008 cannot make progress" in res.stderr
        and "raise budget.max_cost to at least" in res.stderr
    )
    assert not (home / "jobs").exists()  # no job was created
