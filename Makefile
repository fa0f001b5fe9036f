# speechfin: two set-up commands on a fresh machine: `make run` and `make test`.
# Both install from requirements.lock (exact versions of every distribution); `make lock`
# refreshes the lock from a fresh resolve of pyproject.toml.
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed
LOCK   := requirements.lock
LOCK_VENV ?= /tmp/speechfin-lock-venv

.PHONY: run test lock system-deps clean-venv

$(STAMP): $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -r $(LOCK)
	$(VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/python -m pip check
	touch $(STAMP)

# A fresh resolve of pyproject.toml (with the test extra) in a scratch venv, frozen to the lock.
# Run it after changing a dependency, then commit requirements.lock.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q -U pip wheel
	$(LOCK_VENV)/bin/python -m pip install -q -e '.[test,bench]'
	$(LOCK_VENV)/bin/python -m pip check
	{ echo "# speechfin lock: every distribution at its exact version (Python 3.11, Linux x86_64)."; \
	  echo "# Made by 'make lock' on $$(date -u +%Y-%m-%d) from pyproject.toml with the [test,bench] extras; do not edit."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v '^speechfin'; } > $(LOCK)
	rm -rf $(LOCK_VENV)
	@echo "wrote $(LOCK): $$(grep -c '==' $(LOCK)) distributions"

# Debian tools the tests use as a reader would: headless Chromium (report screenshots),
# pdftotext (PDF checks), espeak-ng and ffmpeg (synthetic test audio). Installed only if missing.
system-deps:
	@missing=""; \
	for pair in chromium:chromium pdftotext:poppler-utils espeak-ng:espeak-ng ffmpeg:ffmpeg; do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing (tests that need them are skipped)"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/speechfin run

test: $(STAMP) system-deps
	$(VENV)/bin/pytest -q

clean-venv:
	rm -rf $(VENV)
