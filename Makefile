# Two front doors: `make run` (explorer on the built-in demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501
# Local only by default; HOST=0.0.0.0 exposes the explorer to the network (see README).
HOST ?= 127.0.0.1
# The demo's cache folder (simulated FITS, training run, bundle); see README "The demo".
EXPLORER_HOME ?= $(CURDIR)/.cache
export EXPLORER_HOME

.PHONY: run test demo install browser clean-demo

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install -r requirements.txt
	@touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m training.demo

run: demo
	@echo "Explorer: http://localhost:$(PORT)"
	$(PY) -m streamlit run app.py --server.headless true --server.address $(HOST) --server.port $(PORT) \
	    --browser.gatherUsageStats false </dev/null

# Debian's chromium drives the real-browser tests (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	    else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver; fi; }

test: install browser
	$(PY) -m pytest

clean-demo:
	rm -rf $(EXPLORER_HOME)/demo
