"""The TPU side of the runtime: the one module that knows torch_xla.

A SkyPilot task compiled for a TPU offer sets ``SPOTRAIN_XLA=1`` (and ``SPOTRAIN_TPU_CHIPS``);
its setup installs ``torch`` and ``torch_xla[tpu]`` of the same release (``TORCH_XLA``: torch_xla
pairs only with its own torch). Everything else runs as on a GPU, through accelerate, which puts
the model on the XLA device when torch_xla is importable: bf16, one data-parallel process per chip
(started by :func:`spawn`), checkpoints moved to host memory before they are written, so a TPU's
checkpoint loads on a CPU or a GPU, and the XLA random state saved and restored with the rest, so a
resume on the same device type is exact.

This path has not run on a TPU here (torch_xla's wheels pull a torch build that cannot be installed
on the machines this project is developed on); what can run here is tested: the setup's pins, the
compiled task as SkyPilot loads it, and the one-line error when torch_xla is missing.
"""

from __future__ import annotations

import os
import sys

from spotrain.errors import SpotrainError

ENV = "SPOTRAIN_XLA"
CHIPS_ENV = "SPOTRAIN_TPU_CHIPS"
TORCH_XLA = "2.8.0"  # torch_xla 2.8.0 pairs with torch 2.8.0
LIBTPU_INDEX = "https://storage.googleapis.com/libtpu-releases/index.html"


class XlaMissing(SpotrainError):
    pass


def enabled() -> bool:
    return os.environ.get(ENV, "") == "1"


def require() -> None:
    """On a TPU offer torch_xla must import; a one-line error (exit 2) says what to fix if not."""
    if not enabled():
        return
    try:
        import torch_xla  # noqa: F401
    except ImportError as exc:
        raise XlaMissing(
            f"this attempt runs on a TPU ({ENV}=1) but torch_xla does not import ({exc}) — the node's "
            f"setup installs torch=={TORCH_XLA} with torch_xla[tpu]=={TORCH_XLA} from {LIBTPU_INDEX}; rerun "
            "it with SPOTRAIN_REINSTALL=1, or unset SPOTRAIN_XLA off a TPU"
        ) from None


def rng_capture() -> dict:
    if not enabled():
        return {}
    import torch_xla.core.xla_model as xm

    return {"xla": xm.get_rng_state()}


def rng_restore(state: dict) -> None:
    if enabled() and "xla" in state:
        import torch_xla.core.xla_model as xm

        xm.set_rng_state(state["xla"])


def to_host(obj):
    """``obj`` with every tensor on the CPU (on an XLA device a tensor must leave it to be saved
    loadably); unchanged off a TPU."""
    if not enabled():
        return obj
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v) for v in obj)
    return obj


def _worker(index: int, file: str, overrides: list[str], workdir: str) -> None:
    from pathlib import Path

    from spotrain.recipes.loader import load_recipe

    from .run import run_recipe

    sys.exit(run_recipe(load_recipe(file, overrides), Path(workdir)))


def spawn(file: str, overrides: list[str], workdir: str) -> None:
    """Run the recipe as one process per TPU chip (PJRT: each process drives one chip)."""
    require()
    import torch_xla.distributed.xla_multiprocessing as xmp

    xmp.spawn(_worker, args=(file, list(overrides), workdir))


if __name__ == "__main__":  # python -m spotrain.recipes.runtime.xla FILE WORKDIR [OVERRIDES...]
    spawn(sys.argv[1], sys.argv[3:], sys.argv[2])
