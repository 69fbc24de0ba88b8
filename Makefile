# Two entry points that work on a fresh machine: `make demo` and `make test`.
# Each creates/updates the virtualenv in .venv and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
APT_PACKAGES := dataset-fashion-mnist libfluidsynth3 timgm6mb-soundfont chromium chromium-driver
# torch is pinned in the same pip command as everything else (see docs/environment notes in README).
PIP_INSTALL := $(PY) -m pip install --quiet torch==2.13.0 -e '.[test]'

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PIP_INSTALL)
	# Debian packages: Fashion-MNIST data, fluidsynth + a General MIDI soundfont for the audio
	# data generator, headless Chromium + its driver for the browser tests of `mgdm serve`;
	# skipped without apt-get or root (the tests that need them then skip).
	-command -v apt-get >/dev/null && (dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES))) || true
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mgdm demo --out demo-output

test: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

clean:
	rm -rf $(VENV) demo-output .pytest_cache
