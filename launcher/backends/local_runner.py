"""Runs one attempt's command and records how it ended: ``python -m
spotrain.launcher.backends.local_runner EXIT_FILE [--beat FILE --stale S --restart CMD --log FILE]
-- CMD...``.

It ignores SIGTERM/SIGINT itself (the training process, in the same process group, gets
them, checkpoints and exits), waits, then writes {"exit_code": N, "time": T} to EXIT_FILE
atomically — T is when the attempt ended, what it is billed up to. If the whole group is
SIGKILLed, no exit file appears: the attempt died with its node.

While it waits it keeps the job watched: when the controller's beat file (touched every tick)
is older than ``--stale`` seconds, it starts ``--restart`` (the job's controller, which adopts
this attempt), at most once per stale period, and once more when the attempt ends if the beat is
older than a few seconds then (someone must bill the attempt up to its end). And it holds the
attempt's stop-by moment (``SPOTRAIN_STOP_BY`` / ``SPOTRAIN_LIMITS_FILE``) as a backstop to the
training process's own watchdog: past the moment by 2 s, the command is killed and the exit
recorded as ``EXIT_KILLED``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

BACKSTOP_S = 2.0
EXIT_STALE_S = 5.0  # at the attempt's end, a beat this old means no controller is there to settle it


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _beat_age(path: str | None) -> float | None:
    if not path:
        return None
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return None


def _restart(cmd: str, log: str | None) -> None:
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        subprocess.Popen(
            shlex.split(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(
            "usage: local_runner EXIT_FILE [--beat FILE --stale S --restart CMD --log FILE] -- CMD...",
            file=sys.stderr,
        )
        return 2
    i = argv.index("--")
    p = argparse.ArgumentParser(prog="local_runner")
    p.add_argument("exit_file")
    p.add_argument("--beat")
    p.add_argument("--stale", type=float, default=15.0)
    p.add_argument("--restart")
    p.add_argument("--log")
    args, cmd = p.parse_args(argv[:i]), argv[i + 1 :]
    if not cmd:
        print("usage: local_runner EXIT_FILE [...] -- CMD...", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(args.exit_file + ".pid", "w") as fh:
        fh.write(str(os.getpid()))
    from spotrain.recipes.runtime.train.stop_by import EXIT_KILLED, StopBy

    try:
        limits = StopBy()
    except Exception:  # noqa: BLE001 - a bad value is the training process's one-line error to report
        limits = None
    proc = subprocess.Popen(cmd, preexec_fn=_default_signals)
    last_restart = 0.0
    killed = False
    while True:
        try:
            rc = proc.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            pass
        age = _beat_age(args.beat)
        if args.restart and age is not None and age > args.stale and time.time() - last_restart > args.stale:
            last_restart = time.time()
            _restart(args.restart, args.log)
        if limits is not None:
            limits.refresh()
            if limits.at is not None and time.time() > limits.at + BACKSTOP_S and not killed:
                killed = True
                print(
                    f"error: the attempt outlived its {limits.describe()}; killed",
                    file=sys.stderr,
                    flush=True,
                )
                proc.kill()
    ended = time.time()
    if killed:
        rc = EXIT_KILLED
    tmp = args.exit_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"exit_code": rc, "time": ended}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, args.exit_file)
    # the attempt is over: someone must bill it up to its end and settle the job — if no controller
    # beat lately, start one (a spare one that finds the lease held just exits)
    age = _beat_age(args.beat)
    if args.restart and age is not None and age > EXIT_STALE_S:
        _restart(args.restart, args.log)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
