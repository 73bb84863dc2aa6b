# Set-up and JupyterLab, shared by this repository's Makefile and the student handout's.
# Set-up reruns only when a lock, pyproject.toml or the kernel installer is newer than the last
# install, so a repeat run skips it in well under a second.
SHELL := /bin/bash
# Two environments (see README): d2l-io for PyTorch, TensorFlow and JAX on current releases,
# on Python 3.13 (the newest that all of them publish wheels for), and d2l-io-mxnet for MXNet
# 1.9.1, which needs NumPy 1.x and Python 3.11. Each Python is found on PATH as python3.13 /
# python3.11, else as a pyenv version; PYTHON=... / MXNET_PYTHON=... name one.
find_python = $(shell for p in python$(1) $$HOME/.pyenv/versions/$(1).*/bin/python$(1); do \
  "$$p" -c 'import sys; print(sys.executable)' 2>/dev/null && break; done)
MAIN_PYTHON_VERSION := 3.13
MXNET_PYTHON_VERSION := 3.11
PYTHON ?= $(call find_python,$(MAIN_PYTHON_VERSION))
MXNET_PYTHON ?= $(call find_python,$(MXNET_PYTHON_VERSION))
need_python = @test -n "$(1)" || { echo "Python $(2) not found: install it, or run make with $(3)=/path/to/python$(2)" >&2; exit 1; }
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MXNET_VENV := .venv-mxnet
MXNET_STAMP := $(MXNET_VENV)/.installed

.PHONY: setup lab

setup: $(STAMP)

# uv (itself pinned in requirements.lock) installs each lock's wheels in well under a minute.
# --compile-bytecode: every import after set-up reads compiled bytecode. Without it each new
# process compiles the frameworks' sources again wherever it cannot write __pycache__: the
# grading sandboxes see the environment read-only, so every graded kernel would.
# `uv pip sync` installs exactly the lock: it also removes what the lock no longer lists.
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements.lock)
SYNC = $(BIN)/uv pip sync --quiet --compile-bytecode --python
UV = $(BIN)/uv pip install --quiet --no-deps --python

$(BIN)/uv:
	$(call need_python,$(PYTHON),$(MAIN_PYTHON_VERSION),PYTHON)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) 2>/dev/null \
	  || $(BIN)/python -m pip install --disable-pip-version-check uv==$(UV_VERSION)

$(MXNET_STAMP): $(BIN)/uv requirements-mxnet.lock pyproject.toml
	$(call need_python,$(MXNET_PYTHON),$(MXNET_PYTHON_VERSION),MXNET_PYTHON)
	@test -x $(MXNET_VENV)/bin/python || $(MXNET_PYTHON) -m venv $(MXNET_VENV)
	$(SYNC) $(MXNET_VENV)/bin/python requirements-mxnet.lock
	$(UV) $(MXNET_VENV)/bin/python --no-build-isolation -e .
	@touch $@

# The kernels: both are registered in .venv, whose JupyterLab, nbval and grader start them.
$(STAMP): $(BIN)/uv requirements.lock pyproject.toml d2l_utils/kernel.py $(MXNET_STAMP)
	$(SYNC) $(BIN)/python requirements.lock
	$(UV) $(BIN)/python --no-build-isolation -e .
	$(BIN)/python -m d2l_utils.kernel --sys-prefix --mxnet-python $(MXNET_VENV)/bin/python
	@touch $@

# JupyterLab on http://127.0.0.1:8888, opened on START.md, for students: nbgrader's authoring
# tools hidden, exercise workbooks copied to work/ (see d2l_utils/lab.py). LAB_ARGS passes
# options to JupyterLab (e.g. LAB_ARGS=--port=9999).
lab: setup
	$(BIN)/python -m d2l_utils.lab --ip=127.0.0.1 --no-browser $(LAB_ARGS)
