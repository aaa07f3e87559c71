# The README's commands. `make demo` and `make test` each set up what they need
# (system packages, .venv, the project) and are idempotent: a second run installs nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SF2 := /usr/share/sounds/sf2/FluidR3_GM.sf2

.PHONY: setup system-deps demo test test-all lint format clean

setup: system-deps $(STAMP)

# apt-get only when ffmpeg, fluidsynth, the FluidR3 sound font, espeak-ng (synthetic speech for
# the FSDD recipe) or Python's venv module is missing.
system-deps:
	@pkgs=""; \
	command -v ffmpeg >/dev/null || pkgs="$$pkgs ffmpeg"; \
	command -v fluidsynth >/dev/null || pkgs="$$pkgs fluidsynth"; \
	command -v espeak-ng >/dev/null || pkgs="$$pkgs espeak-ng"; \
	[ -f $(SF2) ] || pkgs="$$pkgs fluid-soundfont-gm"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || pkgs="$$pkgs python3-venv"; \
	if [ -n "$$pkgs" ]; then \
		echo "installing system packages:$$pkgs"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkgs >/dev/null; \
	fi

# A venv without pip (an earlier failed attempt) is rebuilt rather than trusted.
$(STAMP): setup.cfg pyproject.toml
	@test -x $(VENV)/bin/pip || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(PY) -m recipes.satb_separation demo

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Build artefacts only: training runs (runs/) and rendered data (data/) are kept.
clean:
	rm -rf $(VENV) out separated .pytest_cache .ruff_cache *.egg-info
