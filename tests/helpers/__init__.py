"""Helpers the test modules share (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import importlib


class Later:
    """A module imported when the test first reads an attribute of it, not when pytest
    collects the test file. Every pytest-xdist worker collects every file, so a framework
    imported at the top of a test module is imported by every worker (TensorFlow: 5 s each),
    although only the worker that runs the file's tests needs it. Private attributes (names
    starting with an underscore) are not forwarded."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        # pytest probes every module-level object for its own markers (private names) while
        # collecting: answering those would import the module after all.
        if attr.startswith("_"):
            raise AttributeError(attr)
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<imported on first use: {self._name}>"
