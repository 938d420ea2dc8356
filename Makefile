# `make test`: install what is missing (venv, rig servers; cached), then the package boundaries
# (`lint-imports`, the contracts in pyproject.toml) and the whole suite (tests/unit and
# tests/integration).
PYTHON := .venv/bin/python

.PHONY: setup test lint demo manifests docs install bench

setup:
	bash rig/setup.sh

test: setup
	.venv/bin/lint-imports
	$(PYTHON) -m pytest

# `make lint`: ruff and the package boundaries, without the suite.
lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

# `make demo`: the daemon on a copy of config/policy.yaml (in .demo/, to edit) against the rig's
# real servers, with a seeded database and a simulated worker fleet (demo/run.py;
# docs/development.md "The demo"). Ctrl-C stops it all.
demo: setup
	$(PYTHON) -m demo.run $(DEMO_ARGS)

# `make bench`: every scenario of the benchmark on the rig at its defaults, each figure beside
# its baseline, then the one summary line (bench/__main__.py; docs/benchmarks.md). A full run
# takes a while (1M ids twice); BENCH_ARGS shrinks it, e.g. BENCH_ARGS="--only events".
bench: setup
	$(PYTHON) -m bench $(BENCH_ARGS)

# `make manifests`: the files generated from others (tests fail when one is stale): the Helm
# chart's copies of dashboards/alerts.yaml, dashboards/reconciler.json, config/policy.yaml and
# templates/ (charts/reconciler/files/), then the plain manifests deploy/kubernetes/*.yaml
# rendered from the chart with deploy/kubernetes/values.yaml (deploy/render.py; helm from the
# rig, built once by `make setup`).
manifests:
	$(PYTHON) deploy/render.py --write

# `make docs`: the settings table of docs/configuration.md from reconciler/config/ (the Settings
# fields' docstrings), then the documentation site from docs/ (mkdocs.yml) into site/,
# strict: a broken link or anchor, or a page left out of the nav, fails it. (NO_MKDOCS_2_WARNING:
# mkdocs-material's banner about its successor, on every build.)
docs:
	$(PYTHON) -m reconciler.cli.settings_doc --write docs/configuration.md
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

# `make install`: the daemon for systemd/reconciler.service, at exactly the paths the unit uses
# (deploy/install.sh; docs/install.md "systemd"). Override the paths to install elsewhere:
# make install PREFIX=/srv/reconciler SYSCONFDIR=/srv/reconciler/etc UNITDIR=/srv/units
PREFIX ?= /opt/reconciler
SYSCONFDIR ?= /etc/reconciler
UNITDIR ?= /etc/systemd/system
install:
	PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) UNITDIR=$(UNITDIR) bash deploy/install.sh
