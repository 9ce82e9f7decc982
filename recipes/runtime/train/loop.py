"""The training loop: accelerate for device/precision/data parallel, exact checkpoint/resume."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from spotrain.errors import CheckpointError
from spotrain.recipes.schema import Recipe

from .. import evaluate, xla
from ..events import EventLog
from . import checkpoint, optim, rng
from .batches import BatchPlan, make_batch, mask_generator
from .signals import StopFlag

# SPOTRAIN_STEP_SLEEP=seconds pads every optimizer step with a sleep: the job tests use it to give
# a tiny model the step time of a bigger one (preemptions land mid-run) without its CPU cost
STEP_SLEEP_ENV = "SPOTRAIN_STEP_SLEEP"


def step_sleep_s() -> float:
    """The ``SPOTRAIN_STEP_SLEEP`` pad in seconds (0 when unset); a bad value is a one-line error
    before anything is loaded or trained."""
    raw = os.environ.get(STEP_SLEEP_ENV, "").strip()
    try:
        pad = float(raw or 0.0)
    except ValueError:
        pad = -1.0
    if not (0.0 <= pad < float("inf")):
        from spotrain.errors import SpotrainError

        raise SpotrainError(
            f"{STEP_SLEEP_ENV}={raw!r} is not a number of seconds ≥ 0 — unset it or give e.g. 0.05"
        )
    return pad


@dataclass
class Outcome:
    status: str  # "completed" | "interrupted"
    step: int
    exit_code: int = 0
    tokens_seen: int = 0
    last_val: dict | None = None
    restored_from: int | None = None
    info: dict = field(default_factory=dict)


class Trainer:
    def __init__(
        self,
        recipe: Recipe,
        data,
        model,
        accelerator,
        ckpt_root: Path,
        fingerprint: str,
        events: EventLog,
        say: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        remote=None,
        uploader=None,
    ):
        self.r, self.t = recipe, recipe.train
        self.data, self.acc = data, accelerator
        self.root, self.fp = Path(ckpt_root), fingerprint
        self.events, self.say, self.clock = events, say, clock
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.main = accelerator.is_main_process
        opt, sched = optim.build(model, self.t)
        self.model, self.opt = accelerator.prepare(model, opt)
        self.sched = sched  # stepped once per optimizer step by us (not accelerate's per-process wrapper)
        self.tokens = data.tokens("train")
        self.mask = data.loss_mask("train")
        self.plan = BatchPlan(
            self.tokens.shape[0], self.t.batch_size, self.t.grad_accum, self.world, self.rank, recipe.seed
        )
        self.vocab = accelerator.unwrap_model(self.model).get_input_embeddings().num_embeddings
        self.remote, self.uploader = remote, uploader
        self.step = 0
        self.tokens_seen = 0
        self.last_val: dict | None = None
        self.save_seconds: float | None = None  # the last save's duration: part of the stop-by reserve

    # ---------------------------------------------------------------- checkpoints
    def resume(self) -> int | None:
        warn = lambda m: self.say(f"warning: {m}")  # noqa: E731
        if self.remote is not None:
            if self.main:
                have = checkpoint.latest(self.root, warn)
                got = _fetch(self.remote, self.root, have.step if have else None, warn)
                if got is not None:
                    self.events.emit(
                        "checkpoint_downloaded", step=got, uri=f"{self.remote.uri}/step-{got:08d}"
                    )
            self.acc.wait_for_everyone()
        found = checkpoint.latest(self.root, warn=warn)
        if found is None:
            return None
        fp = found.manifest.get("fingerprint")
        if fp != self.fp:
            raise CheckpointError(
                f"checkpoint {found.path} was written for a different model/data (fingerprint {fp}, this "
                f"recipe {self.fp}) — use another --workdir or storage.checkpoints, or delete that folder to "
                "start over"
            )
        load = lambda name: torch.load(found.path / name, map_location="cpu", weights_only=False)  # noqa: E731 - our own files
        self.acc.unwrap_model(self.model).load_state_dict(load("model.pt"))
        self.opt.load_state_dict(load("optimizer.pt"))
        self.sched.load_state_dict(load("scheduler.pt"))
        if self.acc.scaler is not None and (found.path / "scaler.pt").exists():
            self.acc.scaler.load_state_dict(load("scaler.pt"))
        rng_file = found.path / f"rng-{self.rank}.pt"
        if not rng_file.exists():
            self.say(
                f"warning: {found.path.name} has no RNG state for rank {self.rank} (world size changed); "
                "using rank 0's"
            )
            rng_file = found.path / "rng-0.pt"
        rng.restore(load(rng_file.name))
        state = json.loads((found.path / "state.json").read_text())
        self.step, self.tokens_seen, self.last_val = (
            state["step"],
            state["tokens_seen"],
            state.get("last_val"),
        )
        if self.main:
            self.events.emit(
                "checkpoint_restored", step=self.step, path=str(found.path), tokens_seen=self.tokens_seen
            )
        return self.step

    def save(self, reason: str) -> Path | None:
        t0 = self.clock()
        tmp = self.root / f".tmp-step-{self.step:08d}"
        if self.main:
            checkpoint.begin(self.root, self.step)
        self.acc.wait_for_everyone()
        known = {f"rng-{self.rank}.pt": checkpoint.save_torch(rng.capture(), tmp / f"rng-{self.rank}.pt")}
        if self.main:
            # on a TPU the tensors leave the device first, so the checkpoint loads anywhere (xla.py)
            known["model.pt"] = checkpoint.save_torch(
                xla.to_host(self.acc.unwrap_model(self.model).state_dict()), tmp / "model.pt"
            )
            checkpoint.failpoint("model-written", self.step)
            known["optimizer.pt"] = checkpoint.save_torch(
                xla.to_host(self.opt.state_dict()), tmp / "optimizer.pt"
            )
            known["scheduler.pt"] = checkpoint.save_torch(self.sched.state_dict(), tmp / "scheduler.pt")
            if self.acc.scaler is not None:
                known["scaler.pt"] = checkpoint.save_torch(self.acc.scaler.state_dict(), tmp / "scaler.pt")
            state = {
                "step": self.step,
                "tokens_seen": self.tokens_seen,
                "epoch": self.plan.epoch(self.step),
                "world_size": self.world,
                "last_val": self.last_val,
                "fingerprint": self.fp,
            }
            (tmp / "state.json").write_text(json.dumps(state))
        self.acc.wait_for_everyone()
        final = None
        if self.main:
            meta = {
                "fingerprint": self.fp,
                "world_size": self.world,
                "val_loss": (self.last_val or {}).get("loss"),
            }
            final = checkpoint.commit(self.root, tmp, self.step, meta, known)
            protect = (
                {self.uploader.in_flight} if self.uploader and self.uploader.in_flight is not None else set()
            )
            best = checkpoint.best(self.root)
            checkpoint.prune(
                self.root, self.t.checkpoints.keep_last, protect | ({best} if best is not None else set())
            )
            if self.uploader is not None:
                self.uploader.submit(self.step)
            self.events.emit(
                "checkpoint_saved",
                step=self.step,
                path=str(final),
                reason=reason,
                bytes=checkpoint.dir_bytes(final),
                seconds=round(self.clock() - t0, 4),
            )
            self.events.sync()
        self.acc.wait_for_everyone()
        self.save_seconds = self.clock() - t0  # every rank: the stop-by reserve must agree across ranks
        return final

    # ---------------------------------------------------------------- evaluation
    def validate(self) -> dict | None:
        res = None
        if self.main and self.data.manifest["splits"]["val"]["blocks"]:
            res, _ = evaluate.score_split(
                self.acc.unwrap_model(self.model),
                self.data,
                "val",
                self.t.objective,
                self.t.batch_size,
                self.t.eval_batches,
                self.r.seed,
                self.acc.device,
                self.acc.autocast,
            )
            self.events.emit("eval", step=self.step, **res)
            self.say(
                f"step {self.step}: val loss {res['loss']:.4f} ppl {res['perplexity']:.2f} acc "
                f"{res['accuracy']:.3f}"
            )
        self.acc.wait_for_everyone()
        return res

    # ---------------------------------------------------------------- the loop
    def _flags(self, stop: bool, time_due: bool) -> tuple[bool, bool]:
        if self.world == 1:
            return stop, time_due
        v = torch.tensor([float(stop), float(time_due)], device=self.acc.device)
        v = self.acc.reduce(v, reduction="sum")
        return bool(v[0] > 0), bool(v[1] > 0)

    def _limit_reached(self, limits, step_s: float) -> bool:
        return limits is not None and limits.due(step_s, self.save_seconds)

    def _stopped_at_limit(self, limits, restored: int | None, saved: bool) -> Outcome:
        from .stop_by import EXIT_STOPPED

        if self.main:
            self.events.emit(
                "stopped_at_limit", step=self.step, reason=limits.reason, stop_by=limits.at, saved=saved
            )
        self.say(
            f"stopping before the {limits.describe()} at step {self.step}"
            + ("; checkpoint saved" if saved else "")
        )
        return Outcome("stopped", self.step, EXIT_STOPPED, self.tokens_seen, self.last_val, restored)

    def train(self, stop: StopFlag, progress=None, limits=None) -> Outcome:
        """Train to ``train.steps``; a signal, or ``limits`` (a :class:`StopBy`) running out, ends it
        early after a checkpoint."""
        t, acc = self.t, self.acc
        ck = t.checkpoints
        restored = self.step
        self.model.train()
        last_save = last_log = self.clock()
        tokens_at_log = self.tokens_seen
        if stop.raised:  # the notice came during start-up: nothing new to save
            return Outcome(
                "interrupted", self.step, 128 + stop.signum, self.tokens_seen, self.last_val, restored
            )
        step_s = 1.0  # until the first step is timed
        if self._flags(self._limit_reached(limits, step_s), False)[0] and self.step < t.steps:
            return self._stopped_at_limit(
                limits, restored, saved=False
            )  # not even one step fits: nothing new to save
        pad = step_sleep_s()
        while self.step < t.steps:
            step_start = time.monotonic()
            step_loss = torch.zeros((), device=acc.device)
            step_tokens = 0
            for micro in range(t.grad_accum):
                gen = (
                    mask_generator(self.r.seed, self.step, micro, self.rank) if t.objective == "mlm" else None
                )
                batch = make_batch(
                    self.tokens,
                    self.mask,
                    self.plan.indices(self.step, micro),
                    t.objective,
                    self.data.ids,
                    self.vocab,
                    t.mlm_probability,
                    gen,
                )
                step_tokens += int(batch["input_ids"].numel())
                batch = {k: v.to(acc.device, non_blocking=True) for k, v in batch.items()}
                sync = contextlib.nullcontext() if micro == t.grad_accum - 1 else acc.no_sync(self.model)
                with sync, acc.autocast():
                    loss = self.model(**batch).loss / t.grad_accum
                acc.backward(loss)
                step_loss += loss.detach()
            if t.clip_grad_norm:
                grad_norm = acc.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
            else:
                grad_norm = torch.linalg.vector_norm(
                    torch.stack(
                        [p.grad.detach().norm() for p in self.model.parameters() if p.grad is not None]
                    )
                )
            lr = self.sched.get_last_lr()[0]
            self.opt.step()
            self.sched.step()
            self.opt.zero_grad(set_to_none=True)
            if pad > 0:
                time.sleep(pad)
            self.step += 1
            self.tokens_seen += step_tokens * self.world
            if self.world > 1:
                step_loss = acc.reduce(step_loss, reduction="mean")
            if progress is not None:
                progress.update(1)
            if self.main and (self.step % t.log_every == 0 or self.step == t.steps):
                now = self.clock()
                rec = self.events.emit(
                    "step",
                    step=self.step,
                    loss=float(step_loss),
                    lr=lr,
                    grad_norm=float(grad_norm),
                    tokens=self.tokens_seen,
                    tokens_per_s=round((self.tokens_seen - tokens_at_log) / max(now - last_log, 1e-9), 1),
                    epoch=round(self.plan.epoch(self.step), 4),
                )
                last_log, tokens_at_log = now, self.tokens_seen
                if progress is not None:
                    progress.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
                else:
                    self.say(
                        f"step {self.step}/{t.steps} loss {rec['loss']:.4f} lr {lr:.2e} "
                        f"{rec['tokens_per_s']:.0f} tok/s"
                    )
            if t.eval_every and self.step % t.eval_every == 0 and self.step < t.steps:
                self.last_val = self.validate() or self.last_val
            took = time.monotonic() - step_start
            step_s = (
                took if step_s == 1.0 and self.step == restored + 1 else max(took, 0.8 * step_s + 0.2 * took)
            )
            at_limit = self.step < t.steps and self._limit_reached(limits, step_s)
            stopping = stop.raised or at_limit
            time_due = ck.every_minutes is not None and self.clock() - last_save >= ck.every_minutes * 60
            stopping, time_due = self._flags(stopping, time_due)
            at_limit = stopping and not stop.raised
            due = (ck.every_steps and self.step % ck.every_steps == 0) or self.step == t.steps or time_due
            if due or (stopping and (ck.on_signal or at_limit)):
                self.save(
                    "limit"
                    if at_limit
                    else "signal"
                    if stopping
                    else ("final" if self.step == t.steps else "periodic")
                )
                last_save = self.clock()
            if at_limit:
                return self._stopped_at_limit(limits, restored, saved=True)
            if stopping:
                signum = stop.signum or 15
                if self.main:
                    self.events.emit("interrupted", signal=signum, step=self.step)
                return Outcome(
                    "interrupted", self.step, 128 + signum, self.tokens_seen, self.last_val, restored
                )
        return Outcome("completed", self.step, 0, self.tokens_seen, self.last_val, restored)


def _fetch(remote, root, newer_than, warn):
    from ..store.checkpoints import fetch_latest

    return fetch_latest(remote, root, newer_than, warn)
