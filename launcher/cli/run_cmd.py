"""``spotrain run``: run a whole recipe on this machine, in the foreground (node-side runtime)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import click

from spotrain.recipes.loader import load_recipe


def accelerate_command(nproc: int, args: list[str]) -> list[str]:
    """The command that runs ``spotrain run ARGS`` as ``nproc`` data-parallel processes on this
    machine (gloo on CPUs, NCCL on GPUs) through ``accelerate launch``."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(nproc),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "spotrain",
        "run",
        *args,
    ]


@click.command()
@click.argument("file", type=click.Path(path_type=str))
@click.argument("overrides", nargs=-1)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (checkpoints, events, reports). Default: runs/<recipe name>. Rerunning resumes.",
)
@click.option(
    "--nproc",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="Data-parallel processes on this machine (via accelerate launch).",
)
def run(file: str, overrides: tuple[str, ...], workdir: Path | None, nproc: int) -> None:
    """Prepare data, train, checkpoint and evaluate recipe FILE here; rerun to resume."""
    loaded = load_recipe(file, overrides)
    workdir = workdir or Path("runs") / loaded.recipe.name
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from spotrain.recipes.runtime import xla

        if xla.enabled():  # one process per TPU chip, spawned by torch_xla (PJRT)
            xla.require()
            cmd = [sys.executable, "-m", "spotrain.recipes.runtime.xla", file, str(workdir), *overrides]
        else:
            cmd = accelerate_command(nproc, [file, *overrides, "--workdir", str(workdir)])
        proc = subprocess.Popen(cmd)
        for sig in (signal.SIGTERM, signal.SIGINT):  # a spot notice must reach the workers
            signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
        rc = proc.wait()
        raise click.exceptions.Exit(rc if rc >= 0 else 128 - rc)
    from spotrain.recipes.runtime.run import run_recipe  # heavy imports (torch) only when running

    rc = run_recipe(loaded, workdir)
    from spotrain.recipes.runtime.train.stop_by import EXIT_STOPPED

    if rc == EXIT_STOPPED or rc > 128:  # stopped for a limit or a signal, checkpoint saved: exit now — the
        sys.stdout.flush()  # seconds of interpreter teardown on a loaded machine outlast a stop-by moment
        sys.stderr.flush()  # or a cloud's grace period
        os._exit(rc)
    raise click.exceptions.Exit(rc)
