"""Runs one attempt's command and records how it ended: ``python -m
spotrain.launcher.backends.local_runner EXIT_FILE -- CMD...``.

It ignores SIGTERM/SIGINT itself (the training process, in the same process group, gets
them, checkpoints and exits), waits, then writes {"exit_code": N} to EXIT_FILE atomically.
If the whole group is SIGKILLed, no exit file appears: the attempt died with its node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def _default_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main(argv: list[str]) -> int:
    exit_file, sep, *cmd = argv
    if sep != "--" or not cmd:
        print("usage: local_runner EXIT_FILE -- CMD...", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(exit_file + ".pid", "w") as fh:
        fh.write(str(os.getpid()))
    proc = subprocess.Popen(cmd, preexec_fn=_default_signals)
    rc = proc.wait()
    tmp = exit_file + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"exit_code": rc}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, exit_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
