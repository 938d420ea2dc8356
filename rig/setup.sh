#!/usr/bin/env bash
# The one install step for a fresh machine: the project's venv, then every server of the test
# rig (Debian packages, Kafka jars, Go-built etcd/kube-apiserver/kube-scheduler/kwok), cached
# by version under ${XDG_CACHE_HOME:-~/.cache}/reconciler-rig/. A second run takes seconds.
# Usage: rig/setup.sh [SERVER...]   (default: all servers)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# reinstall only when pyproject.toml changed since the last install
stamp=.venv/.reconciler-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi

.venv/bin/python -m rig provision "$@"
