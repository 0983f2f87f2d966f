#!/bin/sh
# The checks against another PyTorch (issue 17: Colab moves its torch forward).
# Makes a venv with torch==VERSION and the project's other pins (extras course and test, minus torch),
# installs this checkout into it, and runs the checks' tests, slow ones included.
#   benchmarks/torch_compat.sh 2.14.1 [VENV]      (default VENV: /tmp/venv-torch<version without dots>)
# Extra arguments after VENV go to pytest (e.g. -k grayscale to re-run one test).
set -eu
version=${1:?usage: benchmarks/torch_compat.sh TORCH_VERSION [VENV] [pytest args]}
venv=${2:-/tmp/venv-torch$(echo "$version" | tr -d .)}
[ $# -ge 2 ] && shift 2 || shift $#
cd "$(dirname "$0")/.."
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "torch==$version"
    "$venv/bin/python" - > "$venv/requirements-without-torch.txt" <<'PY'
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]
print("\n".join(r for r in extras["course"] + extras["test"] if not r.replace(" ", "").startswith("torch==")))
PY
    "$venv/bin/pip" install -q -r "$venv/requirements-without-torch.txt"
fi
"$venv/bin/pip" install -q --no-deps -e .   # this checkout, even if the venv was made from another one
"$venv/bin/python" -c "import torch; print('torch', torch.__version__)"
# nbgrader needs alembic on PATH: the venv's bin first.
PATH="$venv/bin:$PATH" exec python -m pytest -q -p no:cacheprovider tests/test_checks.py tests/test_wrong_answers.py \
    tests/test_colab.py tests/test_engine_*.py tests/test_course.py -k "not browser" "$@"
