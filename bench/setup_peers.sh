#!/usr/bin/env bash
# Install the benchmark peers (and py-spy for profiling), each in its own virtual environment under bench/.peers/
# (gitignored), at the versions the recorded results used.
#
#   bash bench/setup_peers.sh            # both peers
#   PYTHON=python3.11 bash bench/setup_peers.sh
#
# The peers only ever talk to the local moto server the benchmark starts
# (AWS_ENDPOINT_URL=http://127.0.0.1:PORT); installing them needs PyPI.
set -euo pipefail

PROWLER_VERSION="${PROWLER_VERSION:-5.46.0}"
C7N_VERSION="${C7N_VERSION:-0.9.53}"
PY_SPY_VERSION="${PY_SPY_VERSION:-0.4.3}"
PYTHON="${PYTHON:-python3.11}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
peers="$here/.peers"
mkdir -p "$peers"

install() {  # install NAME SPEC
  local name="$1" spec="$2" venv="$peers/$1"
  if [[ -f "$venv/.installed" && "$(cat "$venv/.installed")" == "$spec" ]]; then
    echo "$name: $spec already installed in $venv"
    return
  fi
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # pip's warnings about absent local index mirrors are noise here
  "$venv/bin/python" -m pip install --quiet --upgrade pip 2> >(grep -v "is ignored" >&2)
  "$venv/bin/python" -m pip install --quiet "$spec" 2> >(grep -v "is ignored" >&2)
  echo "$spec" >"$venv/.installed"
  echo "$name: installed $spec in $venv"
}

install prowler "prowler==$PROWLER_VERSION"
install c7n "c7n==$C7N_VERSION"
install tools "py-spy==$PY_SPY_VERSION"  # for audit_users.py --profile

"$peers/prowler/bin/prowler" --version
"$peers/c7n/bin/custodian" version
"$peers/tools/bin/py-spy" --version
