"""Every broken recipe in tests/broken_recipes/ fails with its one-line message, exit 2, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import spotrain

HERE = Path(__file__).parent / "broken_recipes"
CASES = sorted(HERE.glob("*.yaml"))


def header(path: Path) -> tuple[str, str]:
    text = path.read_text()
    cmd = re.search(r"^# command: (\w+)$", text, re.M).group(1)
    expect = re.search(r"^# expect: (.+)$", text, re.M).group(1)
    return cmd, expect


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_recipe_message(path: Path, tmp_path):
    cmd, expect = header(path)
    if cmd == "validate":
        res = spotrain("recipe", "validate", str(path))
    else:
        res = spotrain("run", str(path), "--workdir", str(tmp_path / "w"))
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert expect in res.stderr, res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    if cmd == "run":
        assert [l for l in res.stderr.splitlines() if l.strip()] == [res.stderr.strip()], "one line"
        assert res.stderr.startswith("error: ")


def test_validate_reports_every_error_of_a_file_with_positions(tmp_path):
    bad = tmp_path / "many.yaml"
    bad.write_text(
        "name: x\ndata:\n  sources: [{type: files, pathz: [a]}]\nmodel:\n  layerz: 2\ntrain:\n  lr: fast\n"
    )
    res = spotrain("recipe", "validate", str(bad))
    assert res.returncode == 2
    lines = res.stderr.splitlines()
    assert f"{bad}:3:27: data.sources[0].pathz: unknown key 'pathz' — did you mean 'paths'?" in lines
    assert f"{bad}:3:13: data.sources[0].paths: required field is missing — add it" in lines
    assert f"{bad}:5:3: model.layerz: unknown key 'layerz' — did you mean 'layers'?" in lines
    assert any(l.startswith(f"{bad}:7:7: train.lr: Input should be a valid number") for l in lines)
    assert lines[-1] == "1 of 1 recipe(s) invalid"


def test_validate_many_files_exit_code(tmp_path):
    good = Path(__file__).parent.parent / "recipes" / "tiny-gpt.yaml"
    res = spotrain("recipe", "validate", str(good), str(HERE / "unknown_key.yaml"))
    assert res.returncode == 2
    assert f"{good}: ok" in res.stdout
    assert "1 of 2 recipe(s) invalid" in res.stderr
    assert spotrain("recipe", "validate", str(good)).returncode == 0


def test_debug_variable_shows_traceback():
    res = spotrain("run", str(HERE / "missing_file.yaml"), env={"SPOTRAIN_DEBUG": "1"})
    assert res.returncode != 0
    assert "Traceback" in res.stderr and "DataError" in res.stderr


@pytest.mark.parametrize("value", ["fast", "-1", "nan"])
def test_bad_step_sleep_is_a_one_line_error(value, tmp_path):
    good = Path(__file__).parent.parent / "recipes" / "tiny-gpt.yaml"
    res = spotrain("run", str(good), "--workdir", str(tmp_path / "w"), env={"SPOTRAIN_STEP_SLEEP": value})
    assert res.returncode != 0 and "Traceback" not in res.stderr + res.stdout
    assert [l for l in res.stderr.splitlines() if l.strip()] == [
        f"error: SPOTRAIN_STEP_SLEEP={value!r} is not a number of seconds ≥ 0 — unset it or give e.g. 0.05"
    ]
    assert not (tmp_path / "w" / "result.json").exists()
