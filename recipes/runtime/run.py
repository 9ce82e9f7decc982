"""``spotrain run``: the node-side runtime. Idempotent: rerun it (here or on another machine
sharing the checkpoint store) and it resumes from the newest complete checkpoint.

Run folder: ``events.jsonl`` (metrics contract), ``recipe.yaml`` (resolved), ``checkpoints/``,
``model/`` (final weights + tokenizer, transformers format), ``eval.json``,
``error_analysis.{md,jsonl}``, ``result.json`` (written last on success).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from spotrain.errors import SpotrainError
from spotrain.recipes.loader import LoadedRecipe, recipe_to_yaml

from . import xla

EXIT_OK = 0
# training completed but the final checkpoint did not reach storage.checkpoints: the results live only
# on this machine (the jobs controller fails the job with that message rather than lose them silently)
EXIT_NOT_UPLOADED = 3
FINAL_UPLOAD_S = 600.0


def checkpoint_fingerprint(loaded: LoadedRecipe, data_fp: str) -> str:
    """What a checkpoint must agree with to be resumed: model architecture, objective, data."""
    r = loaded.recipe
    payload = {
        "model": r.model.model_dump(mode="json", by_alias=True),
        "objective": r.train.objective,
        "data": data_fp,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def hold_run_lock(workdir: Path):
    """One run per run folder: an exclusive, non-blocking lock held for the life of the process
    (released by the OS even on SIGKILL). A second run gets a one-line error."""
    import fcntl

    fh = open(workdir / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip() or "another process"
        fh.close()
        raise SpotrainError(
            f"{workdir} is in use by a running spotrain run ({owner}) — wait for it, stop it, or use another "
            "--workdir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    return fh


def _precision(choice: str) -> str:
    import torch

    if choice == "auto":
        if xla.enabled():
            return "bf16"  # every TPU generation computes in bf16
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[choice]


def run_recipe(loaded: LoadedRecipe, workdir: Path, say=print) -> int:
    """Run the recipe; SIGTERM/SIGINT at any point end it cleanly (after a checkpoint once training runs)."""
    from .train.signals import StopFlag
    from .train.stop_by import StopBy

    xla.require()  # a TPU attempt without torch_xla: one line, before anything is built
    limits = StopBy()  # a bad SPOTRAIN_STOP_BY is a one-line error here
    limits.start_watchdog()  # the budget/deadline moment holds through data preparation and hung uploads too
    stop = StopFlag().install()
    try:
        return _run(loaded, workdir, say, stop, limits)
    finally:
        stop.restore()


def _run(loaded: LoadedRecipe, workdir: Path, say, stop, limits) -> int:
    from .train.loop import step_sleep_s

    step_sleep_s()  # a bad test pad fails here, not after data and model are built
    r = loaded.recipe
    if r.train.threads:
        import torch

        torch.set_num_threads(r.train.threads)
    from accelerate import Accelerator
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    from .data.prepare import prepare
    from .events import EventLog

    import torch

    # cpu=True without a GPU makes a torchrun/`accelerate launch` world use gloo (MULTI_CPU).
    # on a TPU accelerate puts the model on the XLA device (torch_xla importable, see xla.py)
    acc = Accelerator(
        mixed_precision=_precision(r.train.precision), cpu=not (torch.cuda.is_available() or xla.enabled())
    )
    main = acc.is_main_process
    say = say if main else (lambda *_: None)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = hold_run_lock(workdir) if main else None  # noqa: F841 - held until this process exits
    events = EventLog(workdir / "events.jsonl", enabled=main)
    t_start = time.time()
    events.emit(
        "run_start",
        recipe=r.name,
        pid=os.getpid(),
        world_size=acc.num_processes,
        device=str(acc.device),
        precision=acc.mixed_precision,
    )
    if main:
        (workdir / "recipe.yaml").write_text(recipe_to_yaml(r))

    with acc.main_process_first():
        data = prepare(loaded, log=say)
    st, sp = data.manifest["stats"], data.manifest["splits"]
    if main:
        events.emit(
            "data_stats",
            fingerprint=data.fingerprint,
            cached=data.cached,
            **st,
            **{f"{k}_{f}": v[f] for k, v in sp.items() for f in ("documents", "tokens", "blocks")},
        )
        how = "cached" if data.cached else f"prepared in {data.manifest['seconds']:.1f}s"
        say(
            f"data {how}: {st['documents_in']} documents in, {st['documents_out']} out "
            f"({st.get('removed_exact_duplicates', 0)} exact + {st.get('removed_near_duplicates', 0)} near "
            "duplicates removed); "
            + ", ".join(f"{k} {v['tokens']:,} tokens/{v['blocks']} blocks" for k, v in sp.items())
        )

    ckpt_fp = checkpoint_fingerprint(loaded, data.fingerprint)
    done = workdir / "result.json"
    if done.exists():
        prev = json.loads(done.read_text())
        if prev.get("fingerprint") == ckpt_fp and prev.get("steps", 0) >= r.train.steps:
            say(
                f"already complete: {prev['steps']} steps, final val loss "
                f"{prev.get('eval', {}).get('val', {}).get('loss')} — see {workdir}"
            )
            events.close()
            return EXIT_OK
        if main:
            done.unlink()

    return _train_and_eval(loaded, data, acc, workdir, events, ckpt_fp, say, t_start, stop, limits)


def _train_and_eval(
    loaded, data, acc, workdir: Path, events, ckpt_fp: str, say, t_start: float, stop, limits
) -> int:
    from .model import build_model
    from .train import rng
    from .train.loop import Trainer

    r = loaded.recipe
    rng.seed_all(r.seed)
    model, info = build_model(r, data.manifest["vocab_size"], data.ids, loaded.base_dir)
    events.emit(
        "model",
        family=r.model.family,
        params=info.params,
        non_embedding_params=info.non_embedding_params,
        flops_per_token=info.flops_per_token,
    )
    say(
        f"model {r.model.from_ or r.model.family}: {info.params / 1e6:.2f}M parameters "
        f"({info.non_embedding_params / 1e6:.2f}M non-embedding), {info.flops_per_token / 1e6:.1f} MFLOP per "
        "training token"
    )
    uploader = None
    if r.storage.remote():  # save locally (fast), upload in the background; resume from the bucket
        from .store.base import open_store
        from .store.uploader import Uploader

        ckpt_root = workdir / "checkpoints"
        remote = open_store(r.storage.checkpoints, **r.storage.store_options())
        if acc.is_main_process:
            uploader = Uploader(remote, ckpt_root, r.train.checkpoints.keep_last, on_event=events.emit)
    else:
        remote = None
        ckpt_root = workdir / (r.storage.checkpoints or "checkpoints")  # an absolute path stays as it is
    trainer = Trainer(r, data, model, acc, ckpt_root, ckpt_fp, events, say, remote=remote, uploader=uploader)
    restored = trainer.resume()
    if restored is not None:
        say(f"resumed from checkpoint at step {restored} ({trainer.tokens_seen:,} tokens seen)")
    progress = None
    if acc.is_main_process and sys.stderr.isatty():
        from tqdm import tqdm

        progress = tqdm(
            total=r.train.steps, initial=trainer.step, desc=r.name, unit="step", dynamic_ncols=True
        )
    try:
        outcome = trainer.train(stop, progress, limits if limits.active else None)
    finally:
        if progress is not None:
            progress.close()
    uploaded = True
    if uploader is not None:  # the newest checkpoint must reach the bucket before this machine goes
        uploaded = _final_upload(uploader, remote, outcome, r.storage.upload_timeout_s, stop, say)
        uploader.close()
    if outcome.status == "stopped":
        events.emit("run_end", status="stopped", step=outcome.step, reason=limits.reason)
        events.close()
        return outcome.exit_code
    if outcome.status == "interrupted":
        say(
            f"interrupted by signal {outcome.exit_code - 128} at step {outcome.step}; checkpoint saved — "
            "rerun to resume"
        )
        events.emit("run_end", status="interrupted", step=outcome.step)
        events.close()
        return outcome.exit_code

    results = {}
    if acc.is_main_process:
        unwrapped = acc.unwrap_model(trainer.model)
        _export(unwrapped, data, workdir)
        results = _final_eval(r, unwrapped, data, acc, workdir, events, say, loaded)
        result = {
            "status": "succeeded",
            "recipe": r.name,
            "steps": outcome.step,
            "tokens_seen": outcome.tokens_seen,
            "fingerprint": ckpt_fp,
            "params": info.params,
            "eval": results,
            "wall_seconds_this_run": round(time.time() - t_start, 2),
        }
        tmp = workdir / ".result.json.tmp"
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, workdir / "result.json")
        events.emit("run_end", status="succeeded", step=outcome.step)
        say(f"done: {outcome.step} steps; results in {workdir}")
    acc.wait_for_everyone()
    events.close()
    if not uploaded:
        say(
            f"error: the bucket {remote.uri} does not have the final checkpoint (step {outcome.step}); the "
            f"results are only in {workdir} — copy them off this machine, or rerun once the bucket is "
            "reachable"
        )
        return EXIT_NOT_UPLOADED
    return EXIT_OK


def _final_upload(uploader, remote, outcome, grace_s: float, stop, say) -> bool:
    """Wait for the newest checkpoint to reach the bucket — only if this run saved it: a step it
    restored is already there (or was never meant to be). A completed run waits up to 10 minutes;
    an interrupted one, or a signal during the wait, only ``upload_timeout_s`` (the cloud's grace).
    True when the bucket has ``outcome.step`` (or nothing new was saved)."""
    step = outcome.step
    if step not in uploader.submitted:
        # nothing this run saved at that step is waiting: the restored checkpoint came from the bucket
        # or the disk
        return True
    budget = max(grace_s, FINAL_UPLOAD_S) if outcome.status == "completed" else grace_s
    end = time.monotonic() + budget
    signalled = stop.raised
    while True:
        left = end - time.monotonic()
        if left <= 0 or uploader.wait(step, min(left, 0.5)):
            break
        if step in uploader.failed:
            break
        if stop.raised and not signalled:  # the machine is going away: its grace period is what is left
            signalled = True
            end = min(end, time.monotonic() + grace_s)
            say(f"signal received while checkpoint {step} uploads: waiting at most {grace_s:g}s more")
    if step in uploader.done:
        return True
    if step in uploader.failed:
        say(
            f"warning: uploading checkpoint {step} to {remote.uri} failed ({uploader.failed[step]}); the "
            "bucket keeps the previous one"
        )
    else:
        say(
            f"warning: checkpoint {step} was still uploading to {remote.uri} after {budget:g}s; the bucket "
            "keeps the previous one"
        )
    return False


def _export(model, data, workdir: Path) -> None:
    """Final weights + tokenizer in transformers format, swapped in atomically."""
    tmp = workdir / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    data.tokenizer.save_pretrained(tmp)
    final = workdir / "model"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def _final_eval(r, model, data, acc, workdir: Path, events, say, loaded) -> dict:
    from . import evaluate

    e = r.eval
    results: dict = {}
    worst: list = []
    for split in e.splits:
        keep = e.error_analysis if split == "test" else 0
        res, w = evaluate.score_split(
            model,
            data,
            split,
            r.train.objective,
            r.train.batch_size,
            e.max_batches,
            r.seed,
            acc.device,
            acc.autocast,
            keep_worst=keep,
        )
        if split == "test":
            worst = w
        results[split] = res
        events.emit("eval", step=r.train.steps, final=True, **res)
        if res.get("tokens"):
            say(
                f"eval {split}: loss {res['loss']:.4f} perplexity {res['perplexity']:.2f} token accuracy "
                f"{res['accuracy']:.3f}"
            )
        else:
            say(f"eval {split}: empty split, skipped")
    if worst:
        path = evaluate.write_error_analysis(workdir, data, worst)
        say(f"error analysis of the {len(worst)} highest-loss test examples: {path}")
    prompts = [(p.prompt, p.reference) for p in e.prompts]
    if e.prompts_file:
        prompts += evaluate.load_prompts(loaded.resolve(e.prompts_file))
    if prompts:
        if r.train.objective == "mlm":
            say("eval prompts skipped: generation needs a causal model (objective clm or sft)")
        else:
            gen = evaluate.generate_and_score(model, data.tokenizer, prompts, e.max_new_tokens, acc.device)
            results["generation"] = gen
            events.emit("generation", bleu=gen["bleu"], chrf=gen["chrf"], prompts=gen["prompts"])
            say(f"generation on {gen['prompts']} prompts: BLEU {gen['bleu']:.2f} chrF {gen['chrf']:.2f}")
    (workdir / "eval.json").write_text(json.dumps(results, indent=2))
    return results
