#!/usr/bin/env bash
# Regenerate constraints.txt (the container image's pins) from a fresh install of the project:
#
#   deploy/container/lock.sh            # from the repository root, with python3 >= 3.11
#
# It runs install.sh with no constraints into a temporary virtualenv and writes what pip resolved
# (every distribution except the project itself) as name==version lines. Review the diff.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

: > "$work/empty.txt"
mkdir -p "$work/bin"
cp "$here/install.sh" "$work/bin/install.sh"
cp "$work/empty.txt" "$work/bin/constraints.txt"
bash "$work/bin/install.sh" "$repo" "$work/venv"
{
  echo "# Pins for the container image (deploy/container/install.sh); written by lock.sh, do not edit."
  "$work/venv/bin/python" -m pip freeze --disable-pip-version-check --exclude tweet_assets | LC_ALL=C sort -f
} > "$here/constraints.txt"
echo "lock.sh: wrote $here/constraints.txt" >&2
