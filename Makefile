# The README's commands. `make demo` and `make test` each set up what they need
# (system packages, .venv, the project) and are idempotent: a second run installs nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.txt
LOCK_VENV := .lock-venv
UV_VERSION := 0.13.9
SF2 := /usr/share/sounds/sf2/FluidR3_GM.sf2
# more General MIDI sample sets for timbre diversity and an unseen-sound-font test
TIMGM := /usr/share/sounds/sf2/TimGM6mb.sf2
CSOUND_SF2 := /usr/share/sounds/sf2/sf_GMbank.sf2
MUSESCORE := /usr/share/sounds/sf3/MuseScore_General_Lite.sf3

.PHONY: setup system-deps browser-deps demo test test-all test-browser lint format clean lock

setup: system-deps $(STAMP)

# apt-get only when ffmpeg, fluidsynth, a sound font (FluidR3, TimGM6mb, the Csound GM bank,
# MuseScore General Lite), espeak-ng (synthetic speech for the FSDD recipe), PortAudio (wb classify
# listen's microphone) or Python's venv module is missing.
system-deps:
	@pkgs=""; \
	command -v ffmpeg >/dev/null || pkgs="$$pkgs ffmpeg"; \
	command -v fluidsynth >/dev/null || pkgs="$$pkgs fluidsynth"; \
	command -v espeak-ng >/dev/null || pkgs="$$pkgs espeak-ng"; \
	[ -f $(SF2) ] || pkgs="$$pkgs fluid-soundfont-gm"; \
	[ -f $(TIMGM) ] || pkgs="$$pkgs timgm6mb-soundfont"; \
	[ -f $(CSOUND_SF2) ] || pkgs="$$pkgs csound-soundfont"; \
	[ -f $(MUSESCORE) ] || pkgs="$$pkgs musescore-general-soundfont-small"; \
	ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so\.2' || pkgs="$$pkgs libportaudio2"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || pkgs="$$pkgs python3-venv"; \
	if [ -n "$$pkgs" ]; then \
		echo "installing system packages:$$pkgs"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$pkgs >/dev/null; \
	fi

# Everything in the venv comes from requirements.txt: exact versions of every direct and
# transitive package, each checked against its SHA-256 (pip's hash-checking mode), so a fresh
# machine gets exactly the set the tests ran with. The project itself is installed without
# dependencies and without build isolation (setuptools comes from the lock too); `pip check`
# fails the set-up if the lock no longer satisfies setup.cfg.
# A venv without pip (an earlier failed attempt) is rebuilt rather than trusted.
# A changed lock ($? lists the newer prerequisites) rebuilds the venv, so no package outside
# the lock survives.
$(STAMP): $(LOCK) setup.cfg pyproject.toml
	@if echo " $? " | grep -q " $(LOCK) "; then rm -rf $(VENV); fi
	@test -x $(VENV)/bin/pip || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $(STAMP)

# Regenerate the lock from setup.cfg (+ the dev extra) with uv, for Linux, Windows and Apple
# silicon, with hashes. uv itself is pinned and lives in its own throw-away venv.
lock:
	@test -x $(LOCK_VENV)/bin/uv || { rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(LOCK_VENV)/bin/uv pip compile setup.cfg --extra dev --universal --python-version 3.11 \
		--generate-hashes --index-url https://pypi.org/simple --custom-compile-command 'make lock' -o $(LOCK)
	@rm -rf wb.egg-info  # metadata uv built in the tree; a stale copy would shadow the venv's

demo: setup
	$(PY) -m recipes.satb_separation demo

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ''

# Headless Chromium and its WebDriver, only for the browser tests of the report pages.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		echo "installing system packages: chromium chromium-driver"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		{ $$SUDO apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
		echo "could not install chromium/chromium-driver: the browser tests will be skipped"; \
	fi

# wb report pages in headless Chromium (playhead, seeking, synced stems); screenshots in artifacts/browser
test-browser: setup browser-deps
	$(PY) -m pytest -q -m browser

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Build artefacts only: training runs (runs/) and rendered data (data/) are kept.
clean:
	rm -rf $(VENV) $(LOCK_VENV) out separated .pytest_cache .ruff_cache *.egg-info
