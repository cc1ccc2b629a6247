#!/usr/bin/env bash
# Prepare what the end-to-end benchmarks compare against (see bench/e2e.md):
#
#   * bench/.venv-peers: a venv of its own holding PySyncObj from PyPI, so that the
#     comparison library never enters the project's dependencies or its .venv;
#   * the `etcd` binary from Debian's etcd-server package, installed with apt-get if
#     it is not on PATH yet (needs root; skipped with a message otherwise).
#
# Idempotent: a second run finds both in place and changes nothing. Safe to interrupt.
# Usage: bash bench/setup_bench_env.sh [--no-etcd]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peers"
python="${PYTHON:-python3}"
want_etcd=1
[[ "${1:-}" == "--no-etcd" ]] && want_etcd=0

# --- PySyncObj ------------------------------------------------------------------------
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import pysyncobj" 2>/dev/null; then
    echo "pysyncobj: present in $venv ($("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pysyncobj"))'))"
else
    echo "pysyncobj: creating $venv"
    "$python" -m venv "$venv"
    # Keep git away from the venv (the project's .gitignore knows only .venv/).
    echo '*' >"$venv/.gitignore"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pysyncobj==0.3.*"
    echo "pysyncobj: installed $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pysyncobj"))')"
fi

# --- etcd -----------------------------------------------------------------------------
if [[ $want_etcd == 0 ]]; then
    echo "etcd: skipped (--no-etcd)"
elif command -v etcd >/dev/null 2>&1; then
    echo "etcd: present ($(command -v etcd), $(etcd --version 2>/dev/null | head -n1))"
elif [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "etcd: not installed and no root apt-get here; the service benchmark will skip etcd"
else
    echo "etcd: installing Debian's etcd-server"
    # Keep the package's init script from starting a system etcd on the default ports
    # (it would compete for the CPU during the benchmark): a policy-rc.d that refuses
    # service starts, only for the duration of the install and only if none exists.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        added_policy=1
    fi
    trap 'if [[ $added_policy == 1 ]]; then rm -f "$policy"; fi' EXIT
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends etcd-server >/dev/null; then
        apt-get update >/dev/null
        apt-get install -y --no-install-recommends etcd-server >/dev/null
    fi
    echo "etcd: installed ($(etcd --version 2>/dev/null | head -n1))"
fi
