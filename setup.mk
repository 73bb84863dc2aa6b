# Set-up and JupyterLab, shared by this repository's Makefile and the student handout's.
# Set-up reruns only when requirements.lock, pyproject.toml or the kernel installer is newer
# than the last install, so a repeat run skips it in well under a second.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lab

setup: $(STAMP)

# uv installs the lock's ~4 GB of wheels in well under a minute (pip takes over three).
# --compile-bytecode: every import after set-up reads compiled bytecode. Without it each new
# process compiles the frameworks' sources again wherever it cannot write __pycache__: the
# grading sandboxes see the environment read-only, so every graded kernel would.
UV_VERSION := 0.13.9
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps

$(STAMP): requirements.lock pyproject.toml d2l_utils/kernel.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) 2>/dev/null \
	  || $(BIN)/python -m pip install --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) --compile-bytecode -r requirements.lock
	$(UV) --no-build-isolation -e .
	$(BIN)/python -m d2l_utils.kernel --sys-prefix
	@touch $(STAMP)

# JupyterLab on http://127.0.0.1:8888, opened on START.md, for students: nbgrader's authoring
# tools hidden, exercise workbooks copied to work/ (see d2l_utils/lab.py). LAB_ARGS passes
# options to JupyterLab (e.g. LAB_ARGS=--port=9999).
lab: setup
	$(BIN)/python -m d2l_utils.lab --ip=127.0.0.1 --no-browser $(LAB_ARGS)
