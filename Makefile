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

# apt-get only when one of ffmpeg, fluidsynth or the FluidR3 sound font is missing.
system-deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v fluidsynth >/dev/null || [ ! -f $(SF2) ]; then \
		echo "installing system packages: ffmpeg fluidsynth fluid-soundfont-gm"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq ffmpeg fluidsynth fluid-soundfont-gm >/dev/null; \
	fi

$(STAMP): setup.cfg pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
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

clean:
	rm -rf $(VENV) out runs separated .pytest_cache .ruff_cache *.egg-info
