#!/usr/bin/env bash
# Every test, as CI runs it (`.ci/run` calls this): installs both venvs from the project's own files
# — .venv (spotrain + test tools) and .venv-sky (SkyPilot, whose pins conflict with the training
# stack) — then runs the suite (`pytest`) and the real SkyPilot launches onto the local Slurm
# cluster (`pytest -m integration`). It fails when SkyPilot cannot be installed, or when
# ../shared/tools/skypilot-local exists and its cluster does not come up: a green run always
# carries the SkyPilot coverage. Without that folder the launches are reported as not run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p .ci-out

# uv installs both venvs in ~10 s where pip takes ~2 min. uv reads no pip config, so it is used only
# where pip's find-links hold this machine's CPU torch wheel (handed to uv as UV_FIND_LINKS);
# elsewhere uv would download CUDA torch, so pip it is. Bytecode is compiled at install, as pip
# does: with PYTHONDONTWRITEBYTECODE=1 every Python process otherwise compiles torch & co.
links=""
for d in ${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true); do
  if compgen -G "$d/torch-2.13.0*.whl" >/dev/null; then links="$d"; break; fi
done
UV=""
if [ -n "$links" ] && python3 -m venv .venv-uv && .venv-uv/bin/pip install -q uv; then
  UV="$PWD/.venv-uv/bin/uv"
  export UV_FIND_LINKS="$links"
fi
venv_install() {  # venv_install DIR PIP-INSTALL-ARGS...
  local dir=$1; shift
  if [ -n "$UV" ]; then
    "$UV" venv -q --allow-existing --seed --python "$(command -v python3)" "$dir" &&
      "$UV" pip install -q --compile-bytecode --python "$dir/bin/python" "$@"
  else
    python3 -m venv "$dir" && "$dir/bin/pip" install -q "$@"
  fi
}

if ! venv_install .venv-sky -r requirements-sky.txt; then
  echo "error: could not install SkyPilot into .venv-sky (requirements-sky.txt); the SkyPilot tests need it" >&2
  exit 1
fi
export SPOTRAIN_SKY_PYTHON="$PWD/.venv-sky/bin/python"

# The Slurm cluster comes up in the background while the venv installs and the suite runs (about
# 30 s, mostly unpacking Debian packages); it is torn down on exit, whatever happens.
SKYTOOLS=../shared/tools/skypilot-local
UP_PID=""
if [ -f "$SKYTOOLS/up.sh" ]; then
  bash "$SKYTOOLS/up.sh" > .ci-out/skylocal-up.log 2>&1 &
  UP_PID=$!
  trap 'wait "$UP_PID" 2>/dev/null; bash "$SKYTOOLS/down.sh" > .ci-out/skylocal-down.log 2>&1 || true' EXIT
fi

venv_install .venv -c constraints.txt -e '.[test]'
. .venv/bin/activate
ruff check . && ruff format --check .  # lint, line length and layout: [tool.ruff] in pyproject.toml
pytest
if [ -z "$UP_PID" ]; then
  echo "note: $SKYTOOLS not found: the real SkyPilot launches (pytest -m integration) were not run" >&2
  exit 0
fi
if ! wait "$UP_PID"; then
  echo "error: the local Slurm cluster did not come up — last lines of .ci-out/skylocal-up.log:" >&2
  tail -20 .ci-out/skylocal-up.log >&2
  exit 1
fi
# After the suite, not beside it: on 2 cores both slowed to a crawl together (17 min).
pytest -m integration
