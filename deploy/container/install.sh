#!/usr/bin/env bash
# The container image's one install step (deploy/container/Dockerfile RUNs it), kept in a script so
# that tests/deploy/test_deploy_container.py can run exactly the same steps in a fresh virtualenv
# where no container daemon is available:
#
#   deploy/container/install.sh SRC_DIR VENV_DIR
#
# It creates VENV_DIR with $PYTHON (default python3; 3.11+ is required: polars 2.1 needs 3.11 and
# pyarrow 26 has no 3.10 wheel), installs pip at the pinned version, then the project from SRC_DIR
# (not editable) with every extra in its pyproject.toml except the developers' `test` and `mutation`, under the pins of
# constraints.txt beside this script (regenerate them with lock.sh after a dependency change), and
# checks that the code location loads. Exits non-zero on any failure.
set -euo pipefail

src="${1:?usage: install.sh SRC_DIR VENV_DIR}"
venv="${2:?usage: install.sh SRC_DIR VENV_DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
pip_version="26.3"

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is older than Python 3.11 (polars 2.1 and pyarrow 26 need 3.11+)"
[[ -f "$src/pyproject.toml" ]] || die "$src has no pyproject.toml"

# The runtime extras: all optional-dependency groups but the developers' ones (test, mutation).
extras="$("$python" - "$src/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    groups = tomllib.load(handle)["project"].get("optional-dependencies", {})
DEVELOPMENT = {"test", "mutation"}  # tools for make test / make mutation, never in the image
print(",".join(sorted(name for name in groups if name not in DEVELOPMENT)))
PY
)"

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pip==$pip_version"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --constraint "$here/constraints.txt" "$src${extras:+[$extras]}"
# (the credential-free sample source: no token or AWS access is needed to load the definitions)
TWEET_ASSETS_SOURCE=sample "$venv/bin/python" -c "import tweet_assets.definitions" \
  || die "the installed project does not load (import tweet_assets.definitions)"
printf 'install.sh: installed %s%s into %s\n' "$src" "${extras:+[$extras]}" "$venv" >&2
