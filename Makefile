# Two commands on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv if missing and install exactly what is pinned.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo podcast test bench clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints.txt -e '.[piper,voxcpm,test]'
	touch $@

demo: $(STAMP)
	$(BIN)/mediamill run manifests/audiobook.csv

podcast: $(STAMP)
	$(BIN)/mediamill run manifests/podcast.csv

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/piper_speed.py
	$(BIN)/python bench/hosted.py
	$(BIN)/python bench/voxcpm_speed.py
	$(BIN)/python bench/mastering.py --hours 1
	$(BIN)/python bench/crash.py
	$(BIN)/python bench/serve_load.py

clean:
	rm -rf outputs .pytest_cache
