"""Checkpoints in S3 (moto server) and GCS (fake-gcs-server), over HTTP on 127.0.0.1:
resume from the bucket alone, partial uploads never selected, retention, verification,
encryption settings, errors."""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from conftest import spotrain, spotrain_popen, tiny_recipe
from spotrain.recipes.runtime.store import checkpoints as remote
from spotrain.recipes.runtime.store.base import StoreError, open_store
from spotrain.recipes.runtime.train import checkpoint as local


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import boto3

    bucket = f"b-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/ckpt", env


@pytest.fixture
def gcs(fake_gcs, monkeypatch):
    env = {"STORAGE_EMULATOR_HOST": fake_gcs.url}
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket = f"b-{uuid.uuid4().hex[:10]}"
    storage.Client(project="t", credentials=AnonymousCredentials()).create_bucket(bucket)
    return f"gs://{bucket}/ckpt", env


@pytest.fixture(params=["local", "s3", "gcs"])
def store_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "bucket"), {}
    return request.getfixturevalue(request.param)


def make_ckpt(root: Path, step: int, payload: bytes = b"w" * 1000, val_loss=None) -> Path:
    tmp = local.begin(root, step)
    (tmp / "model.pt").write_bytes(payload)
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    return local.commit(root, tmp, step, {"fingerprint": "fp", "val_loss": val_loss})


def test_object_store_round_trip(store_uri, tmp_path):
    uri, _ = store_uri
    st = open_store(uri)
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(3000))
    st.put_file("a/x/f.bin", src)
    st.put_bytes("a/y/g.txt", b"hello")
    st.put_bytes("top.txt", b"t")
    assert st.get_bytes("a/y/g.txt") == b"hello" and st.get_bytes("a/none") is None
    st.get_file("a/x/f.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert st.list_dirs() == ["a"] and st.list_dirs("a") == ["x", "y"]
    assert st.list_keys("a") == ["a/x/f.bin", "a/y/g.txt"]
    st.delete_prefix("a")
    assert st.list_keys() == ["top.txt"]


def test_protocol_skips_partial_and_corrupt_and_keeps_best(store_uri, tmp_path):
    uri, _ = store_uri
    st = open_store(uri)
    staging = tmp_path / "staging"
    for step, loss in ((10, 2.0), (20, 1.5), (30, 1.8), (40, 1.9)):
        remote.upload(st, make_ckpt(staging, step, val_loss=loss), step)
    # 50: files uploaded, no manifest (interrupted); 60: a flipped byte
    d50 = make_ckpt(staging, 50)
    st.put_file("step-00000050/model.pt", d50 / "model.pt")
    d60 = make_ckpt(staging, 60, payload=b"x" * 1000)
    remote.upload(st, d60, 60)
    st.put_bytes("step-00000060/model.pt", b"x" * 500 + b"y" + b"x" * 499)
    warnings = []
    fresh = tmp_path / "fresh"
    assert remote.fetch_latest(st, fresh, None, warnings.append) == 40
    assert any("step-00000060: model.pt fails its SHA-256 check" in w for w in warnings)
    assert any("step-00000050: no manifest" in w for w in warnings)
    assert local.latest(fresh).step == 40
    assert remote.fetch_latest(st, fresh, newer_than=40) is None
    removed = remote.prune_remote(st, keep_last=2)
    assert sorted(removed) == [10, 30, 50]  # the best (20, val 1.5) survives; 40 and 60 are the newest two
    assert remote.remote_steps(st) == [60, 40, 20]


def run_recipe(tmp_path: Path, uri: str, steps: int = 40) -> Path:
    slow = {
        "family": "gpt2",
        "layers": 2,
        "heads": 4,
        "hidden": 128,
        "context": 32,
        "dropout": 0.1,
    }  # ~55 ms/step
    r = tiny_recipe(
        model=slow,
        train__batch_size=32,
        train__steps=steps,
        train__checkpoints={"every_steps": 5, "every_minutes": None, "keep_last": 2},
        storage={"checkpoints": uri, "upload_timeout_s": 60},
    )
    p = tmp_path / f"r-{uuid.uuid4().hex[:6]}.yaml"
    p.write_text(yaml.safe_dump(r))
    return p


@pytest.mark.slow(65)
@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_sigkill_then_resume_on_a_fresh_machine_from_the_bucket(kind, request, tmp_path):
    uri, env = request.getfixturevalue(kind)
    ref = spotrain(
        "run", str(run_recipe(tmp_path, str(tmp_path / "refck"))), "--workdir", str(tmp_path / "ref")
    )
    assert ref.returncode == 0, ref.stderr
    recipe = run_recipe(tmp_path, uri)
    # killed mid-upload of its second checkpoint (some files sent, no manifest), then on a "new machine"
    first = spotrain(
        "run",
        str(recipe),
        "--workdir",
        str(tmp_path / "m1"),
        env={**env, "SPOTRAIN_FAILPOINT": "upload-partial@10"},
    )
    assert first.returncode == -signal.SIGKILL
    st = open_store(uri)
    assert 10 in remote.remote_steps(st) and remote.remote_manifest(st, 10) is None
    second = spotrain("run", str(recipe), "--workdir", str(tmp_path / "m2"), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resumed from checkpoint at step 5" in second.stdout
    assert "skipping" in second.stdout and "step-00000010: no manifest" in second.stdout
    evs = [json.loads(l) for l in (tmp_path / "m2" / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "checkpoint_downloaded" and e["step"] == 5 for e in evs)
    assert any(e["event"] == "checkpoint_uploaded" and e["step"] == 40 for e in evs)
    # the bucket alone: a third machine downloads the final checkpoint; weights equal the uninterrupted run
    fresh = tmp_path / "m3"
    assert remote.fetch_latest(st, fresh) == 40
    a = torch.load(fresh / "step-00000040" / "model.pt", weights_only=False)
    b = torch.load(tmp_path / "refck" / "step-00000040" / "model.pt", weights_only=False)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gcs_server_killed_mid_upload_and_restarted(gcs, fake_gcs, tmp_path):
    uri, env = gcs
    recipe = run_recipe(tmp_path, uri, steps=20)
    first = spotrain(
        "run",
        str(recipe),
        "--workdir",
        str(tmp_path / "m1"),
        env={**env, "SPOTRAIN_FAILPOINT": "upload-partial@15"},
    )
    assert first.returncode == -signal.SIGKILL
    fake_gcs.stop()  # the server dies too, with a partial checkpoint in it
    fake_gcs.start()
    st = open_store(uri)
    assert 15 in remote.remote_steps(st) and remote.remote_manifest(st, 15) is None
    warnings = []
    assert remote.fetch_latest(st, tmp_path / "fresh", None, warnings.append) == 10
    second = spotrain("run", str(recipe), "--workdir", str(tmp_path / "m2"), env=env)
    assert second.returncode == 0 and "resumed from checkpoint at step 10" in second.stdout


def test_encryption_settings_reach_the_server(s3, gcs, tmp_path):
    uri, _ = s3
    st = open_store(uri, sse="AES256")
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    st.put_file("k/x", f)
    st.put_bytes("k/y", b"def")
    import boto3

    c = boto3.client("s3")
    bucket, prefix = uri[5:].split("/", 1)
    assert c.head_object(Bucket=bucket, Key=f"{prefix}/k/x")["ServerSideEncryption"] == "AES256"
    assert c.head_object(Bucket=bucket, Key=f"{prefix}/k/y")["ServerSideEncryption"] == "AES256"
    kms = open_store(uri, sse="aws:kms", kms_key_id="alias/my-key")
    assert kms.extra == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/my-key"}
    # fake-gcs-server does not record CMEK names; check every blob we write carries the key
    key = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    g = open_store(gcs[0], kms_key_name=key)
    assert g._blob("a/b").kms_key_name == key
    g.put_bytes("a/b", b"1")
    assert g.get_bytes("a/b") == b"1"


def test_clear_errors_for_missing_bucket_and_network_down(s3, gcs, monkeypatch, tmp_path):
    with pytest.raises(StoreError, match=r"bucket s3://no-such-bucket-x does not exist"):
        open_store("s3://no-such-bucket-x/p").put_bytes("k", b"1")
    with pytest.raises(StoreError, match=r"bucket gs://no-such-bucket-y does not exist"):
        open_store("gs://no-such-bucket-y/p").put_bytes("k", b"1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(
        StoreError, match=r"still failing after 1s of retries .* network down or endpoint unreachable"
    ):
        open_store("s3://b/p", retry_seconds=1).put_bytes("k", b"1")
    with pytest.raises(StoreError, match=r"no bucket name"):
        open_store("s3:///p")


def test_sigterm_uploads_the_final_checkpoint_before_exiting(s3, tmp_path):
    import time

    uri, env = s3
    recipe = run_recipe(tmp_path, uri, steps=2000)
    proc = spotrain_popen("run", str(recipe), "--workdir", str(tmp_path / "m1"), env=env)
    events = tmp_path / "m1" / "events.jsonl"
    deadline = time.monotonic() + 120
    while not (events.exists() and '"checkpoint_uploaded"' in events.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    evs = [json.loads(l) for l in events.read_text().splitlines()]
    final = [e for e in evs if e["event"] == "checkpoint_saved" and e["reason"] == "signal"][-1]["step"]
    assert any(e["event"] == "checkpoint_uploaded" and e["step"] == final for e in evs)
    st = open_store(uri)
    assert remote.remote_steps(st)[0] == final and remote.remote_manifest(st, final) is not None


@pytest.mark.parametrize("kind", ["s3", "gcs"])
def test_data_sources_read_from_buckets(kind, request, tmp_path):
    from spotrain.recipes.loader import LoadedRecipe
    from spotrain.recipes.runtime.data.prepare import prepare
    from spotrain.recipes.schema import Recipe
    from spotrain.errors import DataError

    uri, _ = request.getfixturevalue(kind)
    bucket_root = uri.rsplit("/", 1)[0]
    st = open_store(bucket_root)
    import random

    rng = random.Random(0)
    for i in range(12):
        st.put_bytes(
            f"corpus/part-{i:02d}.txt", " ".join(f"w{rng.randint(0, 300)}" for _ in range(400)).encode()
        )
    st.put_bytes("corpus/README.md", b"not a text shard")
    r = Recipe.model_validate(
        tiny_recipe(
            data__sources=[{"type": "files", "paths": [f"{bucket_root}/corpus/part-*.txt"]}],
            data__max_documents=None,
        )
    )
    p = prepare(LoadedRecipe(r, None, tmp_path), tmp_path / "cache")
    assert p.manifest["stats"]["documents_in"] == 12
    again = prepare(LoadedRecipe(r, None, tmp_path), tmp_path / "cache")
    assert again.cached
    bad = Recipe.model_validate(
        tiny_recipe(data__sources=[{"type": "files", "paths": [f"{bucket_root}/nothing/*.txt"]}])
    )
    with pytest.raises(DataError, match="no objects match"):
        prepare(LoadedRecipe(bad, None, tmp_path), tmp_path / "cache")


def test_denied_access_names_bucket_and_credential_source(monkeypatch):
    """A moto server with authentication enforced rejects unknown keys (HTTP 403)."""
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
        with pytest.raises(StoreError) as exc:
            open_store("s3://team-bucket/ckpt", retry_seconds=2).put_bytes("k", b"1")
        msg = str(exc.value)
        assert msg.startswith("access denied to s3://team-bucket/ckpt (") and "credentials from 'env'" in msg
        assert "very-secret-value" not in msg and "AKIAUNKNOWNKEY000000" not in msg
    finally:
        proc.kill()


def wait_for_event(events: Path, name: str, proc, timeout: float = 120) -> None:
    """Until the run ``proc`` has written event ``name`` (it must still be running)."""
    import time

    end = time.monotonic() + timeout
    while not (events.exists() and f'"{name}"' in events.read_text()):
        assert time.monotonic() < end and proc.poll() is None
        time.sleep(0.05)


def test_resume_at_the_final_step_and_sigint_after_resume_wait_for_nothing(s3, tmp_path):
    """A run restored at its final step has nothing to upload (it used to sit 600 s, then warn); a
    SIGINT just after a resume does not wait upload_timeout_s for an upload never submitted."""
    uri, env = s3
    recipe = run_recipe(tmp_path, uri, steps=10)
    first = spotrain("run", str(recipe), "--workdir", str(tmp_path / "m1"), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    again = spotrain("run", str(recipe), "--workdir", str(tmp_path / "m2"), env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        "resumed from checkpoint at step 10" in again.stdout and "warning" not in again.stdout + again.stderr
    )
    longer = run_recipe(tmp_path, uri, steps=5000)  # same model and data: resumes from the bucket's step 10
    proc = spotrain_popen(
        "run", str(longer), "--workdir", str(tmp_path / "m3"), env={**env, "SPOTRAIN_STEP_SLEEP": "0.5"}
    )
    wait_for_event(tmp_path / "m3" / "events.jsonl", "checkpoint_restored", proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=45)  # upload_timeout_s is 60: it must not be waited out
    assert proc.returncode == 130, out
    assert "not uploaded" not in out and "still uploading" not in out


def test_a_failed_final_upload_says_so_and_exits_3(s3, tmp_path):
    """The bucket disappears mid-run: the last upload fails; the message says what happened and the
    exit code says the bucket does not have the final checkpoint."""
    import boto3

    uri, env = s3
    recipe = run_recipe(tmp_path, uri, steps=60)
    r = yaml.safe_load(recipe.read_text())
    r["storage"]["retry_seconds"] = 2
    recipe.write_text(yaml.safe_dump(r))
    proc = spotrain_popen(
        "run", str(recipe), "--workdir", str(tmp_path / "m1"), env={**env, "SPOTRAIN_STEP_SLEEP": "0.2"}
    )
    wait_for_event(tmp_path / "m1" / "events.jsonl", "checkpoint_uploaded", proc)
    bucket = uri[5:].split("/", 1)[0]
    b = boto3.resource("s3").Bucket(bucket)
    b.objects.all().delete()
    b.delete()
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out[-3000:]
    assert "uploading checkpoint 60 to s3://" in out and "failed (" in out
    assert "does not have the final checkpoint (step 60)" in out
    assert "within 600s" not in out
