"""The local backend: each attempt is `spotrain run` in a subprocess on this machine, in a
per-attempt folder, billed at the chosen cloud offer's price (marked "emulated")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from spotrain.paths import heartbeat_stale_s
from spotrain.pricing.offer import Offer

from .base import CONTROLLER_BEAT, AttemptState, Backend


def _proc_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (guards against PID reuse), or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


class LocalBackend(Backend):
    name = "local"
    emulated = True
    shares_files = True

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}

    def provision(
        self, *, job_id: int, attempt: int, offer: Offer, recipe_path: Path, workdir: Path, env: dict
    ) -> dict:
        workdir.mkdir(parents=True, exist_ok=True)
        exit_file = workdir / "exit.json"
        log = open(workdir / "attempt.log", "ab")
        # the runner restarts the job's controller if its beat goes stale while the attempt runs
        beat = recipe_path.parent / CONTROLLER_BEAT
        cmd = [
            sys.executable,
            "-m",
            "spotrain.launcher.backends.local_runner",
            str(exit_file),
            "--beat",
            str(beat),
            "--stale",
            str(heartbeat_stale_s()),
            "--restart",
            f"{sys.executable} -m spotrain _controller {job_id}",
            "--log",
            str(recipe_path.parent / "controller.log"),
            "--",
            sys.executable,
            "-m",
            "spotrain",
            "run",
            str(recipe_path),
            "--workdir",
            str(workdir),
        ]
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env={**os.environ, **env},
            start_new_session=True,
        )
        log.close()
        self._children[proc.pid] = proc
        return {
            "pid": proc.pid,
            "pgid": proc.pid,
            "start_time": _proc_start_time(proc.pid),
            "dir": str(workdir),
            "exit_file": str(exit_file),
            "log": str(workdir / "attempt.log"),
        }

    def _alive(self, handle: dict) -> bool:
        pid = handle.get("pid")
        if pid is None:
            return False
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            return False
        st = _proc_start_time(pid)
        return st is not None and st == handle.get("start_time")

    def state(self, handle: dict) -> AttemptState:
        exit_file = Path(handle.get("exit_file", "/nonexistent"))
        if exit_file.exists():
            try:
                rec = json.loads(exit_file.read_text())
                return AttemptState(False, int(rec["exit_code"]), ended_at=rec.get("time"))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        if self._alive(handle):
            return AttemptState(True)
        if exit_file.exists():  # written between the two checks
            return self.state(handle)
        return AttemptState(False, None, gone=True)

    def _signal(self, handle: dict, sig: int) -> None:
        if not self._alive(handle):
            return
        try:
            os.killpg(handle["pgid"], sig)
        except ProcessLookupError:
            pass

    def preempt(self, handle: dict) -> None:
        self._signal(handle, signal.SIGTERM)

    def kill(self, handle: dict) -> None:
        self._signal(handle, signal.SIGKILL)
        child = self._children.get(handle.get("pid"))
        if child is not None:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def log_path(self, handle: dict) -> Path:
        return Path(handle["log"])
