# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

export XDG_DATA_HOME := $(CURDIR)/data/.xdg
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/data/.torchinductor
export MPLCONFIGDIR := $(CURDIR)/data/.matplotlib
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install data demo monitor test bench clean browser dashboard

install: $(STAMP)

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU build from local disk.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

data: install
	$(BIN)/synthwatch datasets fetch

demo: data
	$(BIN)/synthwatch run

# Scheduled monitoring on the demo's warehouse: serve the schedule, then replay the ULB transactions into the inbox,
# one simulated hour every 30 s (Ctrl-C stops the feed; `synthwatch schedule stop` stops serving).
monitor: demo
	$(BIN)/synthwatch schedule start
	@echo "watch it: .venv/bin/synthwatch monitor status | .venv/bin/synthwatch schedule list | make dashboard"
	$(BIN)/synthwatch monitor replay --table creditcard --drop Class --interval 30

# The dashboard's browser test drives Debian's chromium through chromedriver: installed here when missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; else \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	fi

test: data browser
	$(BIN)/python -m pytest -q

# The dashboard on 127.0.0.1 (a free port; `make dashboard PORT=8501` to choose), over the warehouse `make demo` made.
dashboard: install
	test -f data/warehouse.duckdb || $(MAKE) demo
	$(BIN)/synthwatch dashboard $(if $(PORT),--port $(PORT))

# Benchmarks are run by hand, never by CI: their figures go into the README.
bench: data
	$(BIN)/python bench/ingest.py --repeats 3 --fixed-cost
	$(BIN)/python bench/tabular.py
	$(BIN)/python bench/quality.py
	sh bench/run_detect.sh
	$(BIN)/python bench/dashboard.py

# the local Prefect server that flow commands start (and `make demo` leaves running) is stopped before its state goes
clean:
	-test ! -x $(BIN)/synthwatch || $(BIN)/synthwatch schedule stop
	-test ! -x $(BIN)/synthwatch || $(BIN)/synthwatch server stop
	rm -rf data/warehouse.duckdb data/models data/reports data/prefect data/inbox
