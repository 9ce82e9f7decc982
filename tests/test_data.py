"""Data pipeline: cleaning, near-dedup, split, augmentation, tokenizer, packing, cache."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_recipe
from spotrain.errors import DataError
from spotrain.recipes.loader import LoadedRecipe
from spotrain.recipes.runtime.data import augment, pack
from spotrain.recipes.runtime.data.clean import clean, jaccard
from spotrain.recipes.runtime.data.documents import Doc
from spotrain.recipes.runtime.data.prepare import prepare
from spotrain.recipes.runtime.data.split import assign
from spotrain.recipes.schema import Recipe
from spotrain.recipes.schema.data import AugmentStep, Clean, Split


def loaded(recipe: dict, base: Path) -> LoadedRecipe:
    return LoadedRecipe(Recipe.model_validate(recipe), None, base)


def words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(500)]
    return " ".join(rng.choice(vocab) for _ in range(n))


def test_cleaning_normalises_strips_controls_and_filters():
    docs = [Doc("cafe\u0301 ok text"), Doc("bell\x07 and\x00 nul\r\nline"), Doc("x"), Doc("y" * 500)]
    stats = Counter()
    out = list(clean(docs, Clean(min_chars=3, max_chars=100, near_dedup={"enabled": False}), stats))
    assert [d.text for d in out] == ["caf\u00e9 ok text", "bell and nul\nline"]
    assert stats["removed_too_short"] == 1 and stats["removed_too_long"] == 1 and stats["documents_out"] == 2
    nfkc = list(clean([Doc("ﬁne ①")], Clean(normalize="NFKC", near_dedup={"enabled": False}), Counter()))
    assert nfkc[0].text == "fine 1"


def test_exact_and_near_duplicates_are_removed_with_a_threshold():
    base = words(400, 1)
    tokens = base.split()
    near = " ".join(tokens[:-4] + ["zz1", "zz2", "zz3", "zz4"])  # ~0.95 similar
    far = " ".join(tokens[:200] + words(200, 2).split())  # ~0.33 similar
    assert jaccard(base, near, 5) > 0.9 and jaccard(base, far, 5) < 0.5
    docs = [Doc(base), Doc(base), Doc(near), Doc(far)]
    stats = Counter()
    kept = list(clean(docs, Clean(near_dedup={"threshold": 0.8}), stats))
    assert [d.text for d in kept] == [base, far]
    assert stats["removed_exact_duplicates"] == 1 and stats["removed_near_duplicates"] == 1
    strict = list(clean(docs, Clean(near_dedup={"threshold": 0.99}), Counter()))
    assert [d.text for d in strict] == [base, near, far]


def test_split_is_deterministic_and_proportional():
    docs = [Doc(f"document number {i}") for i in range(4000)]
    cfg = Split(val=0.1, test=0.05)
    a = [assign(d, cfg) for d in docs]
    assert a == [assign(d, cfg) for d in docs]
    c = Counter(a)
    assert abs(c["val"] / 4000 - 0.1) < 0.02 and abs(c["test"] / 4000 - 0.05) < 0.015
    salted = [assign(d, Split(val=0.1, test=0.05, salt="x")) for d in docs]
    assert salted != a


def test_augmentations_builtin_user_and_errors():
    docs = [Doc("Hello big wide world of words " * 5)]
    out = list(augment.augment(docs, [AugmentStep(fn="case-noise", args={"rate": 0.5})], seed=0))
    assert len(out) == 1 and out[0].text != docs[0].text and out[0].text.lower() == docs[0].text.lower()
    assert out == list(augment.augment(docs, [AugmentStep(fn="case-noise", args={"rate": 0.5})], seed=0))
    user = list(
        augment.augment(
            docs, [AugmentStep(fn="aug_helpers:shout", copies=True, args={"suffix": "?"})], seed=0
        )
    )
    assert [d.text for d in user] == [docs[0].text, docs[0].text.upper() + "?"]
    assert set(augment.BUILTINS) >= {"whitespace-noise", "case-noise", "char-swap"}
    with pytest.raises(DataError, match="cannot import"):
        augment.resolve("no_such_module:fn")


def test_pack_stream_and_pairs():
    blocks = pack.pack_stream(
        [[5, 6, 7], [8, 9]], eos=0, pad=1, seq_len=4, dtype=np.dtype(np.uint16), keep_partial=True
    )
    assert blocks.tolist() == [[5, 6, 7, 0], [8, 9, 0, 1]]
    dropped = pack.pack_stream(
        [[5, 6, 7], [8, 9]], eos=0, pad=1, seq_len=4, dtype=np.dtype(np.uint16), keep_partial=False
    )
    assert dropped.tolist() == [[5, 6, 7, 0]]
    toks, mask, trunc = pack.pack_pairs(
        [([5, 6], [7, 8]), ([5, 6, 7], [8, 9, 10])], eos=0, pad=1, seq_len=6, dtype=np.dtype(np.uint16)
    )
    assert toks.tolist() == [[5, 6, 7, 8, 0, 1], [5, 6, 7, 8, 9, 10]]
    assert mask.tolist() == [[0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 1]]
    assert trunc == 1


def test_prepare_caches_by_content_and_round_trips_text(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(30):
        (corpus / f"{i:02d}.txt").write_text(words(300, i))
    recipe = tiny_recipe(
        data__sources=[{"type": "files", "paths": ["corpus/*.txt"]}],
        data__split={"val": 0.1, "test": 0.1, "salt": ""},
    )
    cache = tmp_path / "cache"
    first = prepare(loaded(recipe, tmp_path), cache)
    assert not first.cached
    m = first.manifest
    assert m["stats"]["documents_in"] == 30 and m["stats"]["documents_out"] == 30
    assert sum(s["documents"] for s in m["splits"].values()) == 30
    train = first.tokens("train")
    assert isinstance(train, np.memmap) and train.shape[1] == 32
    text = first.tokenizer.decode([int(t) for t in train[0]])
    assert text.split(" ")[1] in " ".join(words(300, i) for i in range(30))
    again = prepare(loaded(recipe, tmp_path), cache)
    assert again.cached and again.fingerprint == first.fingerprint
    (corpus / "05.txt").write_text(words(300, 99))
    changed = prepare(loaded(recipe, tmp_path), cache)
    assert not changed.cached and changed.fingerprint != first.fingerprint
    assert not list(cache.glob(".tmp-*"))


def test_tokenizer_training_and_packing_are_deterministic(tmp_path):
    recipe = tiny_recipe()
    a = prepare(loaded(recipe, tmp_path), tmp_path / "c1")
    b = prepare(loaded(recipe, tmp_path), tmp_path / "c2")
    for split in ("train", "val", "test"):
        assert np.array_equal(a.tokens(split), b.tokens(split))
    assert (a.dir / "tokenizer" / "tokenizer.json").read_bytes() == (
        b.dir / "tokenizer" / "tokenizer.json"
    ).read_bytes()


def test_jsonl_field_sft_mask_and_local_tokenizer(tmp_path):
    rows = [
        {"q": f"Question {i}: what is {i} plus {i}?", "a": f" It is {2 * i}.", "body": words(60, i)}
        for i in range(60)
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = tiny_recipe(
        data__sources=[{"type": "files", "paths": ["pairs.jsonl"], "format": "jsonl", "field": "body"}],
        data__max_documents=None,
    )
    p = prepare(loaded(plain, tmp_path), tmp_path / "c")
    assert p.manifest["stats"]["documents_out"] == 60 and p.loss_mask("train") is None
    sft = tiny_recipe(
        data__sources=[
            {
                "type": "files",
                "paths": ["pairs.jsonl"],
                "format": "jsonl",
                "prompt_field": "q",
                "response_field": "a",
            }
        ],
        data__clean={"near_dedup": {"enabled": False}},
        data__max_documents=None,
        train__objective="sft",
    )
    s = prepare(loaded(sft, tmp_path), tmp_path / "c")
    toks, mask = s.tokens("train"), s.loss_mask("train")
    row = [int(t) for t, m in zip(toks[0], mask[0]) if m]
    decoded = s.tokenizer.decode(row)
    assert decoded.startswith(" It is ") and decoded.endswith("<|endoftext|>")
    prompt = s.tokenizer.decode(
        [int(t) for t, m in zip(toks[0], mask[0]) if not m and int(t) != s.ids["pad"]]
    )
    assert prompt.startswith("Question ")
    # a tokenizer folder from an earlier preparation loads as `pretrained`
    reuse = tiny_recipe(data__tokenizer={"type": "pretrained", "path": str(p.dir / "tokenizer")})
    r = prepare(loaded(reuse, tmp_path), tmp_path / "c")
    assert r.manifest["vocab_size"] == p.manifest["vocab_size"]


def test_bad_jsonl_line_is_reported_with_its_position(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": broken}\n')
    recipe = tiny_recipe(data__sources=[{"type": "files", "paths": ["bad.jsonl"], "format": "jsonl"}])
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        prepare(loaded(recipe, tmp_path), tmp_path / "c")
