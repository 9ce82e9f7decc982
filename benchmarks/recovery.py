"""Recovery on the local backend: preemption → first training step after resume (median of N),
training steps redone per preemption, and the controller's CPU use while the job runs.

Preemptions are of two kinds in the same run: graceful (`spotrain preempt`: SIGTERM, the
attempt checkpoints and exits) and hard (SIGKILL of the attempt's process group, as when a
node vanishes; work since the last periodic checkpoint is redone).

    python benchmarks/recovery.py [--graceful 5] [--hard 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from _common import ROOT, spotrain, table


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graceful", type=int, default=5)
    ap.add_argument("--hard", type=int, default=3)
    ap.add_argument("--every", type=int, default=50, help="periodic checkpoint interval (steps)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["SPOTRAIN_HOME"] = home
        from spotrain.jobs.controller import read_progress
        from spotrain.jobs.service import open_store

        res = spotrain(
            "launch",
            str(ROOT / "recipes" / "tiny-gpt.yaml"),
            "--yes",
            "--detach",
            "--no-live",
            "train.steps=5000",
            "train.log_every=1",
            "train.eval_every=null",
            f"train.checkpoints.every_steps={a.every}",
            "train.checkpoints.every_minutes=null",
            "recovery.max_restarts=50",
            "--grace",
            "60s",
        )
        job = int(res.stdout.split("job ", 1)[1].split()[0])
        store = open_store()

        def progress():
            at = store.current_attempt(job)
            return (at, read_progress(Path(at.handle["dir"]))) if at and at.handle.get("dir") else (at, {})

        def wait_steps(n):
            while True:
                at, p = progress()
                if (
                    p.get("step") is not None
                    and p.get("first_step") is not None
                    and p["step"] >= p["first_step"] + n
                ):
                    return at, p
                time.sleep(0.1)

        at, _ = wait_steps(1)
        ctl_pid = store.job(job).controller_pid
        cpu0, t0 = cpu_seconds(ctl_pid), time.time()
        results = []
        for i in range(a.graceful + a.hard):
            hard = i >= a.graceful
            at, p = wait_steps(a.every // 2 + 7)
            t_pre = time.time()
            if hard:
                os.killpg(at.handle["pgid"], signal.SIGKILL)
            else:
                spotrain("preempt", str(job))
            while True:  # the next attempt's first training step
                nxt, q = progress()
                if nxt is not None and nxt.number > at.number and q.get("first_step_time"):
                    break
                time.sleep(0.05)
            last = store.attempt(at.id).last_step
            results.append(
                {
                    "kind": "hard" if hard else "graceful",
                    "latency": q["first_step_time"] - t_pre,
                    "redone": last - q["restored"] if q.get("restored") is not None else None,
                }
            )
        cpu1, t1 = cpu_seconds(ctl_pid), time.time()
        spotrain("cancel", str(job))
        while not store.job(job).ended:
            time.sleep(0.2)
        total = store.spend(job)
    rows = []
    for kind in ("graceful", "hard"):
        rs = [r for r in results if r["kind"] == kind]
        if rs:
            rows.append(
                [
                    kind,
                    len(rs),
                    f"{statistics.median(r['latency'] for r in rs):.1f} s",
                    f"{min(r['latency'] for r in rs):.1f}-{max(r['latency'] for r in rs):.1f} s",
                    f"{statistics.median(r['redone'] for r in rs):g}",
                    " ".join(str(r["redone"]) for r in rs),
                ]
            )
    print(
        f"tiny-gpt on the local backend, checkpoint every {a.every} steps; job cost ${total:.5f} (emulated)"
    )
    print(
        table(
            rows,
            [
                "preemption",
                "n",
                "to first step after resume (median)",
                "range",
                "steps redone (median)",
                "each",
            ],
        )
    )
    if cpu0 is not None and cpu1 is not None:
        print(
            f"controller CPU: {cpu1 - cpu0:.2f} s over {t1 - t0:.0f} s wall = "
            f"{100 * (cpu1 - cpu0) / (t1 - t0):.2f}% of one core"
        )


if __name__ == "__main__":
    main()
