"""`spotrain serve` against a naive FastAPI endpoint that calls `model.generate` once per request,
on tiny-gpt's trained model over loopback, in one run: 200 requests each at concurrency 1, 4 and
16 — requests/s, generated tokens/s, p50/p95 latency and time to first token.

Goal (issue #21): >= 3x the naive throughput at concurrency 16 with p95 no worse; no loss at
concurrency 1. Both servers get the same torch thread count; greedy decoding, 32 new tokens.

    python benchmarks/serve.py [--requests 200] [--threads 1] [--run runs/tiny-gpt]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, table

NAIVE = """
import sys, threading
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModelForCausalLM, AutoTokenizer
import uvicorn

torch.set_num_threads(int(sys.argv[3]))
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
app = FastAPI()


class Body(BaseModel):
    model: str
    prompt: str
    max_tokens: int = 16
    temperature: float = 0.0


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/v1/completions")
def complete(b: Body):  # one generate per request (FastAPI runs it in its thread pool)
    ids = tok(b.prompt, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=b.max_tokens,
                             do_sample=False, pad_token_id=tok.eos_token_id)
    new = out[0, ids.shape[1]:]
    return {"choices": [{"text": tok.decode(new, skip_special_tokens=True), "index": 0}],
            "usage": {"completion_tokens": int(new.shape[0])}}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""

PROMPTS = [
    "The quick brown fox",
    "def main():",
    "import os\nimport sys\n",
    "Once upon a time",
    "class Stack:",
    "for i in range(10):",
    "Errors should never pass silently.",
    "return self.",
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc: subprocess.Popen) -> None:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not come up")


def one(port: int, model: str, prompt: str, tokens: int, stream: bool) -> tuple[float, float, int]:
    """(latency s, time to first token s, generated tokens) of one request."""
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0}
    if stream:
        body["stream"] = True
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    if not stream:
        data = json.loads(r.read())
        t = time.perf_counter() - t0
        return t, t, data["usage"]["completion_tokens"]
    first, text = None, ""
    for line in r:
        line = line.decode().strip()
        if line.startswith("data: ") and line != "data: [DONE]":
            piece = json.loads(line[6:])["choices"][0]["text"]
            if piece and first is None:
                first = time.perf_counter() - t0
            text += piece
    t = time.perf_counter() - t0
    return t, first if first is not None else t, len(text)  # chars here; tokens come from /metrics


def load(port: int, model: str, n: int, conc: int, tokens: int, stream: bool) -> dict:
    jobs = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as ex:
        res = list(ex.map(lambda p: one(port, model, p, tokens, stream), jobs))
    wall = time.perf_counter() - t0
    lat = sorted(r[0] for r in res)
    ttft = sorted(r[1] for r in res)
    return {
        "rps": n / wall,
        "wall": wall,
        "p50": statistics.median(lat),
        "p95": lat[int(0.95 * (len(lat) - 1))],
        "ttft50": statistics.median(ttft),
        "tokens": sum(r[2] for r in res),
    }


def generated_tokens(port: int) -> float:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith("spotrain_generated_tokens_total"):
            return float(line.split()[-1])
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run", type=Path, default=ROOT / "runs" / "tiny-gpt")
    a = ap.parse_args()
    if not (a.run / "model" / "config.json").is_file():
        print(f"training tiny-gpt into {a.run} first (about a minute)…", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "spotrain", "run", "recipes/tiny-gpt.yaml", "--workdir", str(a.run)],
            cwd=ROOT,
            check=True,
        )
    model = "tiny-gpt"
    env = {**os.environ, "SPOTRAIN_API_KEYS": ""}
    rows = []
    for name in ("naive generate per request", "spotrain serve"):
        port = free_port()
        if name.startswith("naive"):
            cmd = [sys.executable, "-c", NAIVE, str(a.run / "model"), str(port), str(a.threads)]
        else:
            cmd = [
                sys.executable,
                "-m",
                "spotrain",
                "serve",
                str(a.run),
                "--port",
                str(port),
                "--threads",
                str(a.threads),
                "--max-batch",
                "16",
            ]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(port, proc)
            one(port, model, "warm up", a.tokens, False)
            for conc in (1, 4, 16):
                before = generated_tokens(port) if name.startswith("spotrain") else 0.0
                r = load(port, model, a.requests, conc, a.tokens, stream=False)
                toks = generated_tokens(port) - before if name.startswith("spotrain") else r["tokens"]
                s = (
                    load(port, model, min(a.requests, 50), conc, a.tokens, stream=True)
                    if name.startswith("spotrain")
                    else None
                )
                rows.append(
                    [
                        name,
                        conc,
                        f"{r['rps']:.1f}",
                        f"{toks / r['wall']:.0f}",
                        f"{r['p50'] * 1000:.0f} ms",
                        f"{r['p95'] * 1000:.0f} ms",
                        f"{s['ttft50'] * 1000:.0f} ms" if s else "-",
                    ]
                )
        finally:
            proc.terminate()
            proc.wait(20)
    print(
        f"{a.requests} requests per concurrency, {a.tokens} new tokens, greedy, torch threads {a.threads}, "
        f"model {a.run / 'model'}; TTFT: median over 50 streamed requests"
    )
    print(table(rows, ["server", "concurrency", "req/s", "tokens/s", "p50", "p95", "TTFT p50"]))
    by = {(r[0], r[1]): float(r[2]) for r in rows}
    for conc in (1, 4, 16):
        ratio = by[("spotrain serve", conc)] / by[("naive generate per request", conc)]
        print(f"concurrency {conc}: spotrain {ratio:.2f}x the naive throughput")


if __name__ == "__main__":
    main()
