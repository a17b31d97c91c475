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

.PHONY: run test demo install browser clean-demo pretrain-gpu frontend

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install -r requirements.txt
	@touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m training.demo

# No file watcher: users run the explorer rather than edit it, and watching .venv floods inotify.
run: demo
	@echo "Explorer: http://localhost:$(PORT)"
	$(PY) -m streamlit run app.py --server.headless true --server.address $(HOST) --server.port $(PORT) \
	    --server.fileWatcherType none \
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

# Paper 1's pre-training on a GPU (issue 10), then the bundle and paper 1's linear-probe protocol with its
# random-init and pixel baselines. Figures: runs/mirabest-gpu/loss.csv and results/mirabest-gpu-linear.
MIRABEST ?= ../shared/data/mirabest
pretrain-gpu: install
	$(PY) -m training.train --config configs/mirabest_byol_gpu.yaml --device cuda --out runs/mirabest-gpu \
	    --data "$(MIRABEST) + sim:radio?n=30000&seed=1"
	$(PY) -m training.embed --checkpoint runs/mirabest-gpu/best.pt --data $(MIRABEST) --device cuda \
	    --out $(EXPLORER_HOME)/bundles/mirabest-gpu --overwrite
	$(PY) -m training.evaluate --bundle $(EXPLORER_HOME)/bundles/mirabest-gpu --label-column fr_class \
	    --filter "confidence == 'confident' and fr_class != 'hybrid'" --test-fraction 0.143 \
	    --labels 36,72,145,291,437,583 --seeds 10 --head linear --device cuda --out results/mirabest-gpu-linear

# Rebuilds the map component (explorer/app/frontend) and the renderer comparison's pages (benchmarks/renderers)
# with Node.js; the built bundles are committed, so `make run` and `make test` never need Node.
frontend:
	cd explorer/app/frontend && npm ci && npm run build
	cd benchmarks/renderers && npm ci && npm run build
