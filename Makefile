# Two commands on a fresh machine: `make demo` and `make test`.
# Both create the virtualenv if missing and install exactly what is pinned:
# the demo only what it needs (the package, Piper, ffmpeg, the recogniser that checks each take);
# the tests everything.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
TOOLS_STAMP := $(VENV)/.installed-tools
# Workers for the suite, each taking whole files (a module's servers and books are made once). Much of it waits
# on subprocesses, servers and ffmpeg, so one more worker than cores; more starve the real-server tests.
# Files go out in collection order, where tests/conftest.py puts the slow ones first (xdist would otherwise
# sort files by their number of tests, which sends the one-test, four-minute crash chain out last).
TEST_WORKERS ?= 3
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# The full install downloads several GB (torch's CUDA wheels, which torchaudio needs); a connection the registry
# drops mid-wheel fails the whole step, so pip resumes a download many times and the step itself is tried thrice.
INSTALL := for try in 1 2 3; do $(PIP) install --retries 10 --resume-retries 20
RETRY   := && break; [ $$try = 3 ] && exit 1; echo "install failed, trying again in 20 s"; sleep 20; done
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO_EXTRAS := piper,verify
ALL_EXTRAS  := piper,verify,whisper,voxcpm,ingest,test
# The batched VoxCPM engine: its package requires flash-attn, which the registry ships only as source
# needing nvcc, so it goes in without its requirements (the rest come with the voxcpm extra).
BATCH_PKGS  := nano-vllm-voxcpm==2.0.5 xxhash==4.1.0

.PHONY: demo podcast test bench clean setup tools

setup: $(STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(DEMO_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(INSTALL) -c constraints.txt -e '.[$(DEMO_EXTRAS)]' $(RETRY)
	touch $@

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(INSTALL) -c constraints.txt -e '.[$(ALL_EXTRAS)]' $(RETRY)
	$(INSTALL) --no-deps $(BATCH_PKGS) $(RETRY)
	touch $@

# epubcheck (Java) checks the read-along books in the tests; Debian packages it.
$(TOOLS_STAMP): | $(VENV)/bin/python
	test -f /usr/share/java/epubcheck.jar || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq epubcheck; }
	touch $@

tools: $(TOOLS_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/mediamill run manifests/audiobook.csv

podcast: $(DEMO_STAMP)
	$(BIN)/mediamill run manifests/podcast.csv

test: $(STAMP) $(TOOLS_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/piper_speed.py
	$(BIN)/python bench/hosted.py
	$(BIN)/python bench/voxcpm_speed.py
	$(BIN)/python bench/mastering.py --hours 1
	$(BIN)/python bench/crash.py
	$(BIN)/python bench/serve_load.py
	$(BIN)/python bench/import_speed.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/captions.py

clean:
	rm -rf outputs .pytest_cache
