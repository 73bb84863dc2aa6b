# Two commands for everyone: `make lab` opens the workbook, `make test` runs every test.
# Both set up .venv first (setup.mk, which the student handout's Makefile shares).
include setup.mk

# pytest-xdist workers; every test and notebook is independent.
JOBS ?= 2

.PHONY: lab-instructor check test test-cpu test-verdict lock sync execute workbooks grade release handout book clean

# Instructors: JupyterLab as `make lab` opens it, with nbgrader's tools (Formgrader, Create
# Assignment, Validate) shown; the course (course/: gradebook, exchange) is made first, so
# that formgrader opens on a fresh checkout.
lab-instructor: setup
	$(BIN)/python -m grading init
	$(BIN)/python -m d2l_utils.lab --instructor --ip=127.0.0.1 --no-browser $(LAB_ARGS)

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder

# Where the suite's time goes: `make test`, then each file's CPU seconds, every process it
# started included (--cpu-report, conftest.py): on 2 cores the suite keeps both busy throughout.
test-cpu: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder --cpu-report

# The quick tier for everyday edits: the unit, twin, workbook and checkpoint tests; not the
# notebooks or the tests marked slow (grading classes, the browser, the walkthroughs run as
# scripts, several frameworks in one Python).
check: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder -m "not slow" tests

# Instructors changing the grader: every framework case of tests/fixtures/verdict (memory-only
# checkpoints, checker bombs, memorised exports), graded for real; about 3.5 minutes on 2 cores.
test-verdict: setup
	D2L_TEST_VERDICT=1 $(BIN)/python -m pytest tests/test_grading_verdict.py

# The walkthroughs and solutions, by their py:percent twins (the files to edit).
SOURCES := $(wildcard notebooks/*/read-write.py notebooks/*.py solutions/*/*.py)

# Pair every notebook with its twin after editing either one (outputs are kept).
sync: setup
	$(BIN)/jupytext --sync $(SOURCES)

# Re-run each notebook from its twin, top to bottom in a fresh kernel (d2l-io-mxnet for the MXNet
# notebooks, d2l-io for the others), and store the
# outputs in the .ipynb: what `make test` then compares against. No execution timestamps are
# recorded, cells keep their ids (--update) and each cell's printed text is stored as one
# stream, however the kernel happened to flush it: only real changes show in a diff. Last,
# the pair is written as JupyterLab's save writes it, so opening and saving it changes nothing.
# `make execute SOURCES=solutions/pytorch/exercises.py` re-runs one notebook.
execute: setup
	@for py in $(SOURCES); do \
	  echo "executing $$py"; \
	  case "$$py" in */mxnet/*) kernel=d2l-io-mxnet;; *) kernel=d2l-io;; esac; \
	  $(BIN)/jupytext --quiet --set-kernel $$kernel --to ipynb $$(test -f "$${py%.py}.ipynb" && echo --update) "$$py" && \
	  $(BIN)/jupyter nbconvert --log-level WARN --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.timeout=600 \
	    --NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
	    --CoalesceStreamsPreprocessor.enabled=True \
	    "$${py%.py}.ipynb" && \
	  $(BIN)/python -m d2l_utils.lab --canonical "$${py%.py}.ipynb" || exit 1; \
	done

# Regenerate the student workbooks notebooks/<framework>/exercises.* from the solutions.
workbooks: setup
	$(BIN)/python -m grading workbooks

# Instructors: grade a folder of submissions laid out as <student>/<framework>/exercises.ipynb.
# Writes course/gradebook.db, course/grades.csv and course/feedback/. GRADE_JOBS (submissions
# at once on this machine) defaults to one per core, as many as the memory holds.
# SCHEDULER=tls://host:8786 grades on that Dask cluster instead, with the certificates in TLS
# (a folder: ca.pem, node.pem, node.key; see README, "Grading on a cluster").
SUBMISSIONS ?= course/submitted
# Only new or changed submissions are graded; FORCE=1 grades all again (hand-given grades are
# kept either way).
grade: setup
	$(BIN)/python -m grading grade $(SUBMISSIONS) $(if $(GRADE_JOBS),--jobs $(GRADE_JOBS)) \
	  $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
	  $(if $(TLS),--tls-ca $(TLS)/ca.pem --tls-cert $(TLS)/node.pem --tls-key $(TLS)/node.key) \
	  $(if $(FORCE),--force)

# Instructors: put the committed workbook of ASSIGNMENT into course/release/, for
# `nbgrader release_assignment ASSIGNMENT` (see README, "Running a course").
release: setup
	$(BIN)/python -m grading generate $(ASSIGNMENT)
	$(BIN)/nbgrader release_assignment $(ASSIGNMENT) --force

# Instructors: the folder to hand out (notebooks, d2l_utils, environment files, README).
HANDOUT ?= handout
handout: setup
	$(BIN)/python -m grading handout --out $(HANDOUT)

# Re-resolve requirements*.in into their locks (then print what newer releases other Pythons
# get: scripts/newest_releases.py): the newest releases on the package index that resolve
# together, for each environment's Python (setup.mk; the lock's first line names it).
# d2l==1.0.3 is added without its 2023 pins. rfc3987-syntax is left out: jsonschema uses it
# only if present, and it compiles a grammar on import that adds about 4 s to every
# `import nbformat` (each notebook test, each graded submission).
COMPILE = $(BIN)/uv pip compile --python-version $(1) --no-header --no-annotate \
	  --no-emit-package rfc3987-syntax
LOCK_HEAD = "\# Generated by 'make lock' from $(1) for Python $(3) (+ d2l==1.0.3, installed without its 2023 pins).\n\# Installed with 'uv pip install --no-deps -r $(2)': exactly these versions."
lock: setup
	( printf $(call LOCK_HEAD,requirements.in,requirements.lock,$(MAIN_PYTHON_VERSION))"\n"; \
	  $(call COMPILE,$(MAIN_PYTHON_VERSION)) requirements.in; echo "d2l==1.0.3" ) > requirements.lock
	( printf $(call LOCK_HEAD,requirements-mxnet.in,requirements-mxnet.lock,$(MXNET_PYTHON_VERSION))"\n"; \
	  $(call COMPILE,$(MXNET_PYTHON_VERSION)) requirements-mxnet.in; echo "d2l==1.0.3" ) > requirements-mxnet.lock
	$(BIN)/python scripts/sync_environment.py
	$(BIN)/python scripts/newest_releases.py

# The chapter as a static website in _build/html (README, "The chapter as a website"): the
# walkthroughs in synced framework tabs, the other notebooks and START.md, with the stored
# outputs (nothing is run); any Sphinx warning fails it. HUB=https://hub.example.org adds
# "Open in JupyterHub" links (nbgitpuller) that pull REPO (default: the origin remote) at BRANCH.
# BOOK_BUILD: where the pages' sources and the site go (tests/test_book.py builds elsewhere).
HUB ?=
REPO ?= $(shell git remote get-url origin 2>/dev/null)
BRANCH ?= main
BOOK_BUILD ?= _build
book: setup
	$(if $(HUB),$(if $(REPO),,$(error HUB needs REPO, the git URL the hub pulls (no origin remote here))))
	@mkdir -p $(BOOK_BUILD)/src
	$(BIN)/sphinx-build -E -W --keep-going -q -b html -c book -d $(BOOK_BUILD)/doctrees \
	  -D d2l_hub=$(HUB) -D d2l_repo=$(REPO) -D d2l_branch=$(BRANCH) $(BOOK_BUILD)/src $(BOOK_BUILD)/html
	@echo "the site: $(BOOK_BUILD)/html/index.html"

clean:
	rm -rf $(VENV) $(MXNET_VENV) scratch work _build
