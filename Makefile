# `make test`: install what is missing (venv, rig servers; cached), then the whole suite
# (tests/unit and tests/integration).
PYTHON := .venv/bin/python

.PHONY: setup test demo manifests docs install bench

setup:
	bash rig/setup.sh

test: setup
	$(PYTHON) -m pytest

# `make demo`: the daemon on config/policy.yaml against the rig's real servers, with a seeded
# database and a simulated worker fleet (demo/run.py; README "Demo"). Ctrl-C stops it all.
demo: setup
	$(PYTHON) -m demo.run $(DEMO_ARGS)

# `make bench`: every scenario of the benchmark on the rig at its defaults, each figure beside
# its baseline, then the one summary line (bench/__main__.py; README "Benchmarks"). A full run
# takes a while (1M ids twice); BENCH_ARGS shrinks it, e.g. BENCH_ARGS="--only events".
bench: setup
	$(PYTHON) -m bench $(BENCH_ARGS)

# `make manifests`: the files generated from another (tests fail when one is stale):
# deploy/kubernetes/prometheusrule.yaml from dashboards/alerts.yaml.
manifests:
	$(PYTHON) deploy/prometheusrule.py --write

# `make docs`: README.md's settings table from reconciler/config/settings.py (the fields' docstrings).
docs:
	$(PYTHON) -m reconciler.cli.settings_doc --write README.md

# `make install`: the daemon for systemd/reconciler.service, at exactly the paths the unit uses
# (deploy/install.sh; README "Running under systemd"). Override the paths to install elsewhere:
# make install PREFIX=/srv/reconciler SYSCONFDIR=/srv/reconciler/etc UNITDIR=/srv/units
PREFIX ?= /opt/reconciler
SYSCONFDIR ?= /etc/reconciler
UNITDIR ?= /etc/systemd/system
install:
	PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) UNITDIR=$(UNITDIR) bash deploy/install.sh
