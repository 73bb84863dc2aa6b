"""A faulty worker for tests (`dask worker --preload tests/helpers/bloated_worker.py`): it
answers every job with one byte more than a result may hold."""

import grading.engine
from grading.limits import MAX_RESULT_BYTES


def _bloated(job):
    return b" " * (MAX_RESULT_BYTES + 1)


grading.engine.grade_job = _bloated
