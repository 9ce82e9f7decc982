"""The ``train`` section: objective, optimisation, precision, checkpoints."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Section


class Checkpoints(Section):
    every_steps: Annotated[
        int | None,
        Field(ge=1, description="Save a checkpoint every N optimizer steps; null disables step-based saves."),
    ] = 100
    every_minutes: Annotated[
        float | None,
        Field(
            gt=0,
            description="Also save when this many minutes have passed since the last save; null disables.",
        ),
    ] = 30.0
    keep_last: Annotated[
        int,
        Field(
            ge=1,
            description=(
                "Keep the newest K complete checkpoints; older ones are deleted only after a newer one is "
                "complete."
            ),
        ),
    ] = 3
    on_signal: Annotated[
        bool,
        Field(description="On SIGTERM/SIGINT (a spot interruption notice) save a checkpoint before exiting."),
    ] = True


class Train(Section):
    objective: Annotated[
        Literal["clm", "mlm", "sft"],
        Field(
            description=(
                "`clm`: next-token prediction; `mlm`: masked language modelling (bert); `sft`: "
                "prompt/response pairs with loss on the response only."
            )
        ),
    ] = "clm"
    steps: Annotated[
        int, Field(ge=1, le=100_000_000, description="Optimizer steps to train for (at most 100 million).")
    ] = 1000
    batch_size: Annotated[int, Field(ge=1, description="Sequences per micro-batch per process.")] = 8
    grad_accum: Annotated[int, Field(ge=1, description="Micro-batches accumulated per optimizer step.")] = 1
    lr: Annotated[float, Field(gt=0, description="Peak learning rate (AdamW).")] = 3e-4
    min_lr_ratio: Annotated[
        float, Field(ge=0, le=1, description="Final learning rate as a fraction of the peak (cosine/linear).")
    ] = 0.1
    warmup_steps: Annotated[int, Field(ge=0, description="Linear warm-up steps.")] = 100
    schedule: Annotated[
        Literal["cosine", "linear", "constant"], Field(description="Learning-rate decay after warm-up.")
    ] = "cosine"
    weight_decay: Annotated[
        float, Field(ge=0, description="AdamW weight decay (not applied to biases and norms).")
    ] = 0.1
    betas: Annotated[tuple[float, float], Field(description="AdamW betas.")] = (0.9, 0.95)
    eps: Annotated[float, Field(gt=0, description="AdamW epsilon.")] = 1e-8
    clip_grad_norm: Annotated[
        float | None, Field(gt=0, description="Clip the global gradient norm to this value; null disables.")
    ] = 1.0
    mlm_probability: Annotated[
        float,
        Field(gt=0, lt=1, description="`mlm`: fraction of tokens masked (80% [MASK], 10% random, 10% kept)."),
    ] = 0.15
    precision: Annotated[
        Literal["auto", "fp32", "bf16", "fp16"],
        Field(description="`auto`: bf16 on GPUs that support it, else fp32."),
    ] = "auto"
    threads: Annotated[
        int | None,
        Field(
            ge=1,
            description=(
                "torch CPU threads per process (fix it for bit-exact CPU runs); null keeps torch's default."
            ),
        ),
    ] = None
    log_every: Annotated[int, Field(ge=1, description="Write a step event every N steps.")] = 10
    eval_every: Annotated[
        int | None,
        Field(ge=1, description="Evaluate on the validation split every N steps; null only at the end."),
    ] = None
    eval_batches: Annotated[int, Field(ge=1, description="Validation batches per periodic evaluation.")] = 20
    checkpoints: Annotated[Checkpoints, Field(description="When to checkpoint and how many to keep.")] = (
        Checkpoints()
    )
