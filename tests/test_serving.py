"""`spotrain serve`: a real uvicorn server on 127.0.0.1 and the official `openai` client; limits
and error bodies through the same app in process. The model is a small GPT-2 with a byte-level BPE
tokenizer built here (a served model needs no training to be served)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import ROOT, free_port, wait

KEYS = ("sk-first-3f9a", "sk-second-77c1")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def make_run(folder: Path, name: str, chat: bool = False) -> Path:
    """A run folder as `spotrain run` leaves it: model/ (weights + tokenizer) and recipe.yaml."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    text = [p.read_text(errors="ignore") for p in sorted((ROOT / "jobs").glob("*.py"))[:6]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text, vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>")
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    eos = tok.eos_token_id
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=256,
        n_embd=64,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    model = GPT2LMHeadModel(cfg)
    (folder / "model").mkdir(parents=True)
    model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    (folder / "recipe.yaml").write_text(f"name: {name}\n")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    return make_run(base / "plain", "tiny-serve"), make_run(base / "chat", "tiny-chat", chat=True)


def start(run: Path, *args: str, keys=KEYS):
    port = free_port()
    log = run.parent / f"serve-{port}.log"
    env = {**os.environ, "SPOTRAIN_API_KEYS": ",".join(keys)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spotrain", "serve", str(run), "--port", str(port), "--threads", "1", *args],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    import urllib.request

    def up():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200
        except OSError:
            assert proc.poll() is None, log.read_text()
            return False

    wait(up, 60, "the server")
    return proc, f"http://127.0.0.1:{port}", log


@pytest.fixture(scope="module")
def server(runs):
    proc, url, log = start(runs[0])
    yield url, log
    proc.terminate()
    proc.wait(10)


def client(url, key=KEYS[0]):
    import openai

    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_completions_streaming_and_models_through_the_openai_client(server):
    url, _ = server
    c = client(url)
    assert [m.id for m in c.models.list().data] == ["tiny-serve"]
    r = c.completions.create(model="tiny-serve", prompt="def controller(", max_tokens=12, temperature=0)
    assert r.object == "text_completion" and r.choices[0].finish_reason in ("length", "stop")
    assert r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 0
    again = c.completions.create(model="tiny-serve", prompt="def controller(", max_tokens=12, temperature=0)
    assert again.choices[0].text == r.choices[0].text  # greedy is deterministic
    streamed = c.completions.create(
        model="tiny-serve", prompt="def controller(", max_tokens=12, temperature=0, stream=True
    )
    chunks = list(streamed)
    assert "".join(ch.choices[0].text for ch in chunks) == r.choices[0].text
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason
    seeded = [
        c.completions.create(model="tiny-serve", prompt="import", max_tokens=8, temperature=0.9, seed=5)
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]  # a seed makes sampling repeatable
    stop = c.completions.create(
        model="tiny-serve",
        prompt="def controller(",
        max_tokens=12,
        temperature=0,
        stop=[r.choices[0].text[3:5]],
    )
    if r.choices[0].text[3:5]:
        assert stop.choices[0].finish_reason == "stop" and len(stop.choices[0].text) <= 3 + len(
            r.choices[0].text[:3]
        )
    import openai

    with pytest.raises(openai.BadRequestError, match="no chat template"):
        c.chat.completions.create(model="tiny-serve", messages=[{"role": "user", "content": "hi"}])


def test_chat_where_the_tokenizer_has_a_template(runs):
    proc, url, _ = start(runs[1])
    try:
        c = client(url)
        msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "def run("}]
        r = c.chat.completions.create(model="tiny-chat", messages=msgs, max_tokens=8, temperature=0)
        assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
        s = c.chat.completions.create(
            model="tiny-chat", messages=msgs, max_tokens=8, temperature=0, stream=True
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in s) == r.choices[0].message.content
    finally:
        proc.terminate()
        proc.wait(10)


def test_api_keys_are_required_compared_and_never_logged(server):
    import openai

    url, log = server
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(url, key="sk-wrong").models.list()
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(url, key=KEYS[0] + "x").completions.create(model="tiny-serve", prompt="x", max_tokens=1)
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as no_key:
        urllib.request.urlopen(f"{url}/v1/models", timeout=10)
    assert no_key.value.code == 401 and json.loads(no_key.value.read())["error"]["code"] == "missing_api_key"
    assert client(url, key=KEYS[1]).models.list().data[0].id == "tiny-serve"
    text = log.read_text()
    assert "API keys required" in text and not any(k in text for k in KEYS)


def raw(
    url: str,
    path: str,
    body: bytes | None,
    key: str | None = KEYS[0],
    method: str = "POST",
    headers: dict | None = None,
) -> tuple[int, dict | str]:
    import http.client

    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    h = {"Content-Type": "application/json", **(headers or {})}
    if key:
        h["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data.decode(errors="replace")


BAD = [
    (b"{not json", 400),
    (b"", 400),
    (b"[1, 2]", 400),
    (b'"a string"', 400),
    (b'\xff\xfe{"model": 1}', 400),  # invalid UTF-8
    (json.dumps({"prompt": "x"}).encode(), 422),  # no model
    (json.dumps({"model": "tiny-serve"}).encode(), 422),  # no prompt
    (json.dumps({"model": "tiny-serve", "prompt": 5}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": None}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": []}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": ["a"] * 17}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "max_tokens": -1}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "max_tokens": 0}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "max_tokens": 10**9}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "max_tokens": "many"}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "max_tokens": 300}).encode(), 422),  # past the context
    (json.dumps({"model": "tiny-serve", "prompt": "x", "temperature": -1}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "temperature": 3}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "top_p": 0}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "n": 2}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "stop": [""]}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": "x", "stream": "yes please"}).encode(), 422),
    (json.dumps({"model": "tiny-serve", "prompt": ["a", "b"], "stream": True}).encode(), 422),
    (json.dumps({"model": "gpt-4", "prompt": "x"}).encode(), 404),
    (json.dumps({"model": "tiny-serve", "prompt": "word " * 3000}).encode(), 413),  # over max prompt tokens
    (json.dumps({"model": "tiny-serve", "prompt": "x" * (2 << 20)}).encode(), 413),  # a 2 MB prompt
]


def test_bad_requests_get_the_right_4xx_and_the_server_stays_up(server):
    url, _ = server
    assert len(BAD) >= 25
    for body, status in BAD:
        got, reply = raw(url, "/v1/completions", body)
        assert got == status, (body[:80], got, reply)
        assert isinstance(reply, dict) and reply["error"]["message"], reply
    chat = raw(url, "/v1/chat/completions", json.dumps({"model": "tiny-serve", "messages": []}).encode())
    assert chat[0] == 422
    assert raw(url, "/v1/completions", None, method="GET")[0] == 405
    assert raw(url, "/nope", None, method="GET")[0] == 404
    assert raw(url, "/v1/completions", b"{}", headers={"Content-Length": "abc"})[0] in (400, 413)
    assert raw(url, "/health", None, method="GET") == (
        200,
        {"status": "ok", "model": "tiny-serve", "in_flight": 0},
    )
    ok = client(url).completions.create(model="tiny-serve", prompt="still up", max_tokens=2)
    assert ok.choices


def test_batching_gives_the_same_greedy_completion_alone_or_among_16(server):
    """16 prompts of different lengths (so they are left-padded), each alone and then all at once —
    as one request with 16 prompts and as 16 concurrent requests: the same greedy text."""
    url, _ = server
    c = client(url)
    prompts = [("def " + "x" * (i % 7) + f" step_{i}(") for i in range(16)]
    alone = [
        c.completions.create(model="tiny-serve", prompt=p, max_tokens=10, temperature=0).choices[0].text
        for p in prompts
    ]
    together = c.completions.create(model="tiny-serve", prompt=prompts, max_tokens=10, temperature=0)
    assert [ch.text for ch in sorted(together.choices, key=lambda ch: ch.index)] == alone
    got: dict[int, str] = {}

    def one(i):
        got[i] = (
            client(url)
            .completions.create(model="tiny-serve", prompt=prompts[i], max_tokens=10, temperature=0)
            .choices[0]
            .text
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [got[i] for i in range(16)] == alone
    metrics = raw(url, "/metrics", None, method="GET")[1]
    sizes = [l for l in metrics.splitlines() if l.startswith("spotrain_batch_size_count")]
    assert sizes and float(sizes[0].split()[-1]) > 0
    big = [l for l in metrics.splitlines() if l.startswith('spotrain_batch_size_bucket{le="1.0"}')]
    total = float(sizes[0].split()[-1])
    assert float(big[0].split()[-1]) < total, "some requests were decoded together"
    assert 'spotrain_requests_total{code="200",endpoint="/v1/completions"}' in metrics


def test_limits_in_process(runs):
    """Rate limit per key, requests in flight, a stopped service: 429 and 503 with OpenAI bodies."""
    from fastapi.testclient import TestClient

    from spotrain.serving.api import Limits, State, create_app
    from spotrain.serving.engine import Engine

    engine = Engine(runs[0] / "model", max_batch=4, threads=1)
    state = State()
    app = create_app(engine, "tiny-serve", ["k"], Limits(rate_limit_per_minute=3), state)
    with TestClient(app) as tc:
        h = {"Authorization": "Bearer k"}
        body = {"model": "tiny-serve", "prompt": "a", "max_tokens": 1}
        codes = [tc.post("/v1/completions", json=body, headers=h).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        state.buckets.clear()
        state.in_flight = 64
        r = tc.post("/v1/completions", json=body, headers=h)
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
        state.in_flight = 0
        state.stopped = "budget $0.50 a day reached"
        r = tc.post("/v1/completions", json=body, headers=h)
        assert r.status_code == 503 and "budget $0.50 a day reached" in r.json()["error"]["message"]
        assert tc.get("/health").status_code == 503
    engine.close()


def test_serve_refuses_what_it_cannot_serve(tmp_path):
    from conftest import spotrain

    res = spotrain("serve", str(tmp_path))
    assert res.returncode == 2 and "no model/ here" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "bert"}')
    res = spotrain("serve", str(tmp_path), "--port", str(free_port()))
    assert (
        res.returncode == 2
        and "not a causal language model" in res.stderr
        and len(res.stderr.strip().splitlines()) == 1
    )


def test_the_deploy_section_is_checked_like_the_others(tmp_path):
    import yaml

    from conftest import spotrain, tiny_recipe

    def validate(deploy, secrets=None):
        r = tiny_recipe(deploy=deploy, **({"secrets": secrets} if secrets else {}))
        (tmp_path / "r.yaml").write_text(yaml.safe_dump(r))
        return spotrain("recipe", "validate", str(tmp_path / "r.yaml"))

    ok = validate(
        {"replicas": {"min": 1, "max": 3}, "api_keys": ["SERVE_KEY"], "budget": {"max_cost_per_day": 2}},
        {"SERVE_KEY": None},
    )
    assert ok.returncode == 0, ok.stderr
    bad = validate({"replicas": {"min": 4, "max": 2}})
    assert bad.returncode == 2
    assert "deploy.replicas: min 4 is above max 2 — lower min or raise max" in bad.stderr
    typo = validate({"replica": {"min": 1}})
    assert typo.returncode == 2 and "did you mean 'replicas'" in typo.stderr
    key = validate({"api_keys": ["NOPE"]})
    assert key.returncode == 2 and "deploy.api_keys[0]: 'NOPE' is not in secrets" in key.stderr
    engine = validate({"engine": "tgi"})
    assert engine.returncode == 2 and "deploy.engine" in engine.stderr


def test_serve_takes_limits_and_keys_from_the_runs_deploy_section(runs, tmp_path):
    import shutil

    import openai

    from conftest import spotrain

    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    (run / "recipe.yaml").write_text(
        "name: tiny-serve\nsecrets: {SERVE_KEY: null}\n"
        "deploy: {api_keys: [SERVE_KEY], limits: {max_new_tokens: 8, max_batch: 4}}\n"
    )
    missing = spotrain("serve", str(run), "--port", str(free_port()))
    assert (
        missing.returncode == 2 and "deploy.api_keys names SERVE_KEY, not set in this shell" in missing.stderr
    )
    os.environ["SERVE_KEY"] = "sk-from-the-recipe"
    try:
        proc, url, log = start(run, keys=())
    finally:
        del os.environ["SERVE_KEY"]
    try:
        c = client(url, key="sk-from-the-recipe")
        assert c.completions.create(model="tiny-serve", prompt="x", max_tokens=8).choices
        with pytest.raises(openai.UnprocessableEntityError, match="max_tokens is 9; at most 8"):
            c.completions.create(model="tiny-serve", prompt="x", max_tokens=9)
        with pytest.raises(openai.AuthenticationError):
            client(url, key=KEYS[0]).models.list()
        assert "sk-from-the-recipe" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
