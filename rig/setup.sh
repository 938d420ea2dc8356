#!/usr/bin/env bash
# The one install step for a fresh machine: the project's venv, then every server of the test
# rig (Debian packages, Kafka jars, Go-built etcd/kube-apiserver/kube-scheduler/kwok,
# kustomize), cached by version under ${XDG_CACHE_HOME:-~/.cache}/reconciler-rig/. A second
# run takes seconds. Each step says what it costs before it starts, and a slow one prints a
# line at least every 30 s while it works.
# Usage: rig/setup.sh [SERVER...]   (default: all servers)
set -euo pipefail
cd "$(dirname "$0")/.."
. rig/heartbeat.sh

# pip: no "new release" notice, no prompts, only errors (a fresh venv's pip is often old).
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $(python3 --version) (~5 s)"
  python3 -m venv .venv
fi
# reinstall only when pyproject.toml changed since the last install
stamp=.venv/.reconciler-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing reconciler and its dev tools into .venv with pip" \
       "(~30 s with a warm pip cache, a few minutes without)"
  with_heartbeat "installing into .venv" .venv/bin/pip install -q --upgrade pip
  with_heartbeat "installing into .venv" .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
else
  echo "setup: .venv is up to date with pyproject.toml"
fi

echo "setup: the rig's servers (each says what it costs if it has work to do)"
.venv/bin/python -m rig provision "$@"
