"""Recipe schema: documented fields, JSON schema, typed overrides, shipped recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from conftest import ROOT, spotrain
from spotrain.errors import RecipeError
from spotrain.recipes import schema_walk
from spotrain.recipes.loader import apply_overrides, load_recipe
from spotrain.recipes.schema import Recipe

SHIPPED = sorted((ROOT / "recipes").glob("*.yaml"))


def all_models(root=Recipe, seen=None):
    seen = set() if seen is None else seen
    if root in seen:
        return seen
    seen.add(root)
    for info in root.model_fields.values():
        stack = [info.annotation]
        while stack:
            tp = schema_walk.strip(stack.pop())
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                all_models(tp, seen)
            else:
                stack.extend(getattr(tp, "__args__", ()))
    return seen


def test_every_field_of_every_section_has_a_description():
    models = all_models()
    assert {m.__name__ for m in models} >= {
        "Recipe",
        "Data",
        "Model",
        "Train",
        "Eval",
        "Resources",
        "Budget",
        "Storage",
        "FilesSource",
        "StdlibSource",
        "BPETokenizer",
        "PretrainedTokenizer",
    }
    missing = [
        f"{m.__name__}.{n}"
        for m in models
        for n, f in m.model_fields.items()
        if not (f.description or "").strip()
    ]
    assert missing == []


def test_schema_command_prints_json_schema_with_descriptions():
    res = spotrain("recipe", "schema")
    assert res.returncode == 0
    doc = json.loads(res.stdout)
    assert doc["title"] == "spotrain recipe"
    assert "data" in doc["required"]
    train = doc["$defs"]["Train"]["properties"]
    assert train["steps"]["description"].startswith("Optimizer steps")
    assert doc["$defs"]["Train"]["additionalProperties"] is False
    assert "from" in doc["$defs"]["Model"]["properties"]
    sources = doc["$defs"]["Data"]["properties"]["sources"]["items"]
    assert sources["discriminator"]["propertyName"] == "type"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_recipe_is_valid_and_documented(path: Path):
    loaded = load_recipe(path)
    head = path.read_text().split("\n")
    comments = []
    for line in head:
        if not line.startswith("#"):
            break
        comments.append(line)
    text = "\n".join(comments)
    assert comments and "Purpose:" in text and "Launch:" in text and "Override:" in text
    assert loaded.recipe.name == path.stem


def test_shipped_recipe_set():
    assert {p.stem for p in SHIPPED} >= {"tiny-gpt", "tiny-bert-mlm", "gpt2-small"}


def test_gpt2_small_is_a_124m_model():
    from spotrain.recipes.runtime.model import build_model

    loaded = load_recipe(ROOT / "recipes" / "gpt2-small.yaml")
    model, info = build_model(loaded.recipe, 50257, {"eos": 0, "pad": 1, "mask": 2}, loaded.base_dir)
    assert 123e6 < info.params < 126e6
    # 6·N plus attention at T=1024 for GPT-2 small is ~0.85 GFLOP per token
    assert 0.7e9 < info.flops_per_token < 1.0e9


def test_overrides_are_typed_by_the_schema(tmp_path):
    data = {"name": "x", "data": {"sources": [{"type": "files", "paths": ["a"]}]}}
    apply_overrides(
        data,
        [
            "train.steps=20",
            "train.lr=3e-4",
            "name=007",
            "description=true",
            "budget.deadline=36h",
            "resources.accelerators=[A100:8, L4]",
            "data.sources.0.paths=[b.txt]",
            "model.vocab_size=null",
            "model.from=gpt2",
        ],
    )
    assert data["train"]["steps"] == 20
    assert data["name"] == "007" and data["description"] == "true"  # text fields keep text
    assert data["resources"]["accelerators"] == ["A100:8", "L4"]
    assert data["data"]["sources"][0]["paths"] == ["b.txt"]
    assert data["model"]["vocab_size"] is None
    r = Recipe.model_validate(data)
    assert r.train.lr == 3e-4 and r.model.from_ == "gpt2"


def test_bad_overrides_name_the_override(tmp_path):
    recipe = ROOT / "recipes" / "tiny-gpt.yaml"
    with pytest.raises(RecipeError) as exc:
        load_recipe(recipe, ["train.stepz=3", "train.steps=many"])
    lines = exc.value.lines
    assert "override 'train.stepz=3': train.stepz: unknown key 'stepz' — did you mean 'steps'?" in lines
    assert any(
        l.startswith("override 'train.steps=many': train.steps: Input should be a valid integer")
        for l in lines
    )
    with pytest.raises(RecipeError, match="write it as dotted.key=value"):
        load_recipe(recipe, ["train.steps"])
    with pytest.raises(RecipeError, match=r"data.sources\[5\] does not exist"):
        load_recipe(recipe, ["data.sources.5.paths=[a]"])


def test_show_prints_resolved_recipe_with_overrides():
    res = spotrain(
        "recipe", "show", "recipes/tiny-gpt.yaml", "train.steps=7", "train.warmup_steps=1", "model.layers=1"
    )
    assert res.returncode == 0, res.stderr
    shown = yaml.safe_load(res.stdout)
    assert shown["train"]["steps"] == 7 and shown["model"]["layers"] == 1
    assert shown["train"]["checkpoints"]["keep_last"] == 2  # from the file
    assert shown["train"]["grad_accum"] == 1  # a default filled in
    again = spotrain(
        "recipe",
        "show",
        "recipes/tiny-gpt.yaml",
        "train.steps=7",
        "train.warmup_steps=1",
        "model.layers=1",
        "--json",
    )
    assert json.loads(again.stdout) == shown


def test_recipe_reference_in_docs_is_generated_from_the_schema():
    from spotrain.recipes.docs import reference_markdown

    assert reference_markdown() in (ROOT / "docs" / "recipes.md").read_text()
