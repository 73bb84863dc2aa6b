"""Every limit the grader puts on submissions and on itself, in one place.

Untrusted code (a student's kernel, and the trusted checks reading untrusted files) runs in
grading.sandbox under the first group; the others bound what the grader reads or waits for.
`python -m grading grade` takes --timeout, --output-limit, --memory, --processes and
--lock-wait to change the defaults for one run.
"""

from dataclasses import dataclass

# Per cell of a student's notebook.
CELL_TIMEOUT = 60  # seconds
OUTPUT_LIMIT = 1_000_000  # bytes of a cell's output kept in the feedback
GRACE = 3  # seconds a kernel gets to answer an interrupt (an honest one answers in milliseconds)

# Per sandbox (a kernel and its processes, or one checker).
MEMORY_LIMIT = 4 * 2**30  # bytes of address space
PROCESS_LIMIT = 256
FILE_LIMIT = 512 * 2**20  # bytes in one file written: no honest file comes near

# What the grader reads or waits for.
MAX_SUBMISSION_BYTES = 50 * 2**20  # a submission folder, all files together
MAX_EXPORT_BYTES = FILE_LIMIT  # the largest export read: the largest file a sandbox can write
MAX_CHECKED_FILE = 64 * 2**20  # bytes of one exported file the PyTorch checks read into memory
MAX_FEEDBACK_BYTES = 64 * 2**20  # an executed notebook a worker sends back for the feedback
MAX_RESULT_BYTES = 96 * 2**20  # a worker's whole answer (that notebook in base64, the checks)
CHECK_LIMIT = 300  # seconds for the trusted checks of one graded cell
LOCK_WAIT = 30  # seconds to wait for a gradebook another program (formgrader) holds locked


@dataclass(frozen=True)
class Limits:
    """The limits one grading run puts on each submission: what travels with every job to the
    worker that grades it (seconds, bytes, counts)."""

    cell_time: int = CELL_TIMEOUT
    output: int = OUTPUT_LIMIT
    memory: int = MEMORY_LIMIT
    processes: int = PROCESS_LIMIT
    file_size: int = FILE_LIMIT
    check_time: int = CHECK_LIMIT
    grace: int = GRACE

    def __post_init__(self):
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {name} must be a positive whole number, not {value!r}")
