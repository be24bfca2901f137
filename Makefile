# The two commands of the quick start: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check browser protos up docs deploy-check compose-up compose-down deploy-e2e clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "voxmesh needs Python >= 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV) || { echo "creating the venv failed: on Debian, apt-get install python3-venv"; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/voxmesh transcribe samples/welcome.flac --pace realtime

test: check browser
	$(BIN)/pytest

# The web page's test drives a real browser: Debian's chromium, installed here when it is missing and this
# is a root shell with apt (CI's fresh machine); otherwise that one test is skipped and says so.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is not installed: tests/services/test_web_page.py will be skipped"

# The habits: lint and format, types, the protos' style, and their wire and code compatibility with the
# released baseline (protos/baseline.binpb; replace it only on purpose, in its own commit: see protos/README.md).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd protos && ../$(BIN)/buf lint && ../$(BIN)/buf breaking --against baseline.binpb

up: $(STAMP)
	$(BIN)/voxmesh up

protos: $(STAMP)
	$(BIN)/python protos/generate.py

clean:
	rm -rf $(VENV) build *.egg-info

# The compose stack for real: Docker, or podman after the one-time `sudo deploy/setup-podman.sh`.
compose-up: $(STAMP)
	PYTHON=$(BIN)/python deploy/run-local.sh

compose-down:
	deploy/run-local.sh down

# Out of `make test` (a build takes minutes): build the image, run the stack as containers, transcribe real
# speech through it, SIGKILL an ASR replica mid-stream, scrape every service (docs/deployment.md).
deploy-e2e: $(STAMP)
	$(BIN)/python deploy/e2e.py

deploy-check: $(STAMP)
	PYTHON=$(BIN)/python deploy/check.sh

docs: $(STAMP)
	$(BIN)/python -m voxmesh.settings > docs/settings.md
