"""The checkpoint protocol on its own: completeness, verification, retention; time-based saves."""

from __future__ import annotations

import json
import fcntl
import os
import pty
import struct
import termios
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT, tiny_recipe
from spotrain.recipes.runtime.events import EventLog, read_events, repair_tail
from spotrain.recipes.runtime.train import checkpoint


def make(root: Path, step: int, complete: bool = True, payload: bytes = b"weights") -> Path:
    tmp = checkpoint.begin(root, step)
    (tmp / "model.pt").write_bytes(payload)
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    if complete:
        return checkpoint.commit(root, tmp, step, {"fingerprint": "fp"})
    return tmp


def test_latest_skips_incomplete_and_corrupt_checkpoints(tmp_path):
    make(tmp_path, 10)
    make(tmp_path, 20)
    # 30: renamed into place but killed before the manifest
    t = make(tmp_path, 30, complete=False)
    os.replace(t, checkpoint.step_dir(tmp_path, 30))
    # 40: still a temporary folder
    make(tmp_path, 40, complete=False)
    warnings = []
    found = checkpoint.latest(tmp_path, warnings.append)
    assert found.step == 20 and found.manifest["fingerprint"] == "fp"
    assert warnings == ["skipping checkpoint step-00000030: no manifest (interrupted while saving)"]


def test_a_flipped_byte_is_detected(tmp_path):
    make(tmp_path, 10)
    good = make(tmp_path, 20, payload=b"x" * 1000)
    data = bytearray((good / "model.pt").read_bytes())
    data[500] ^= 0x01
    (good / "model.pt").write_bytes(bytes(data))
    warnings = []
    assert checkpoint.latest(tmp_path, warnings.append).step == 10
    assert "model.pt fails its SHA-256 check" in warnings[0]
    (good / "model.pt").write_bytes(b"short")
    assert "has 5 bytes, manifest says 1000" in checkpoint.verify(good)[1]


def test_prune_keeps_last_k_and_cleans_leftovers(tmp_path):
    for s in (10, 20, 30, 40):
        make(tmp_path, s)
    broken = make(tmp_path, 25, complete=False)
    os.replace(broken, checkpoint.step_dir(tmp_path, 25))
    make(tmp_path, 35, complete=False)  # stale temp folder
    make(tmp_path, 50, complete=False)  # a save in progress (newer than the newest complete): kept
    checkpoint.prune(tmp_path, keep_last=2, protect={10})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".tmp-step-00000050", "step-00000010", "step-00000030", "step-00000040"]


def test_event_log_drops_a_cut_short_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path, clock=lambda: 1.0)
    log.emit("step", step=1, loss=2.5)
    log.close()
    with open(path, "a") as fh:
        fh.write('{"event":"step","st')  # a hard kill mid-write
    assert [e["step"] for e in read_events(path)] == [1]
    repair_tail(path)
    log = EventLog(path, clock=lambda: 2.0)
    log.emit("step", step=2, loss=2.4)
    log.close()
    assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == [1, 2]


def test_time_based_checkpoints_use_the_injected_clock(tmp_path):
    """every_minutes with every_steps off: saves happen as the (fake) clock advances."""
    import torch
    from accelerate import Accelerator

    from spotrain.recipes.loader import LoadedRecipe
    from spotrain.recipes.runtime.data.prepare import prepare
    from spotrain.recipes.runtime.model import build_model
    from spotrain.recipes.runtime.train.loop import Trainer
    from spotrain.recipes.runtime.train.signals import StopFlag
    from spotrain.recipes.schema import Recipe

    torch.set_num_threads(1)
    recipe = Recipe.model_validate(
        tiny_recipe(
            train__steps=12, train__checkpoints={"every_steps": None, "every_minutes": 1.0, "keep_last": 10}
        )
    )
    loaded = LoadedRecipe(recipe, None, tmp_path)
    data = prepare(loaded, tmp_path / "cache")
    model, _ = build_model(recipe, data.manifest["vocab_size"], data.ids, tmp_path)
    now = [0.0]

    def clock():  # each step takes 25 "seconds"
        return now[0]

    class SteppingLog(EventLog):  # each training step takes 25 "seconds"
        def emit(self, event, **fields):
            if event == "step":
                now[0] += 25.0
            return super().emit(event, **fields)

    log = SteppingLog(tmp_path / "events.jsonl", clock=clock)
    trainer = Trainer(
        recipe, data, model, Accelerator(cpu=True), tmp_path / "ck", "fp", log, lambda s: None, clock=clock
    )

    out = trainer.train(StopFlag())
    log.close()
    saves = [
        (e["step"], e["reason"])
        for e in read_events(tmp_path / "events.jsonl")
        if e["event"] == "checkpoint_saved"
    ]
    assert out.status == "completed"
    assert saves == [(3, "periodic"), (6, "periodic"), (9, "periodic"), (12, "final")]


def test_progress_bar_on_a_terminal(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(train__steps=8)))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real terminal has a size
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotrain", "run", str(recipe), "--workdir", str(tmp_path / "w")],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=ROOT,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    out = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "tiny-test: 100%" in out and "8/8" in out
    assert "step/s" in out or "s/step" in out
    assert "loss=" in out


def test_event_tail_reads_only_what_was_appended_and_restarts_on_a_rewrite(tmp_path):
    """The one events reader (controller, live policy, status, TUI): offset-based, a cut last
    line waits for its newline, a shrunk or replaced file is read again from the start."""
    import os

    from spotrain.recipes.runtime.events import EventTail

    p = tmp_path / "events.jsonl"
    tail = EventTail(p)
    assert tail.read() == ([], False)  # no file yet
    p.write_text('{"event":"step","step":1}\n{"event":"step","st')
    assert [e["step"] for e in tail.read()[0]] == [1]
    with open(p, "a") as fh:
        fh.write('ep":2}\nnot json\n{"event":"step","step":3}\n')
    evs, reset = tail.read()
    assert [e["step"] for e in evs] == [2, 3] and not reset
    assert tail.read() == ([], False)
    repl = tmp_path / "new.jsonl"
    repl.write_text(
        '{"event":"step","step":1}\n{"event":"step","step":2}\n{"event":"step","step":3}\n{"event":"step","step":4}\n'
    )
    os.replace(repl, p)  # rewritten (the SkyPilot backend's copy), longer than before
    evs, reset = tail.read()
    assert reset and [e["step"] for e in evs] == [1, 2, 3, 4]
    p.write_text('{"event":"step","step":9}\n')  # shrank
    evs, reset = tail.read()
    assert reset and [e["step"] for e in evs] == [9]


def test_progress_reader_folds_incrementally(tmp_path):
    from spotrain.jobs.controller import ProgressReader, read_progress

    log = EventLog(tmp_path / "events.jsonl", clock=iter(range(100, 200)).__next__)
    read = ProgressReader()
    log.emit("checkpoint_restored", step=4)
    log.emit("step", step=5, loss=2.0)
    assert read(tmp_path) == {
        "restored": 4,
        "first_step": 5,
        "first_step_time": 101,
        "step": 5,
        "loss": 2.0,
        "step_time": 101,
    }
    log.emit("step", step=7, loss=1.5)
    log.emit("checkpoint_saved", step=7, seconds=0.5)
    got = read(tmp_path)
    assert abs(got["step_seconds"] - 0.5) < 1e-9 and got["saved"] == 7 and got == read_progress(tmp_path)
