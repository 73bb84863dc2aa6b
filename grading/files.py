"""Files from untrusted hands: a submission folder copied or packed (regular files only, size
capped) and unpacked on a worker, and the one error that says a submission's files cannot be
used. Imported by the grader, the runner and the engine alike (it imports none of them)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

from grading.limits import MAX_SUBMISSION_BYTES


class SubmissionError(Exception):
    """A submission that cannot be run at all (missing or invalid notebook, too large)."""


def copy_submission(src: Path, dst: Path, limit: int = MAX_SUBMISSION_BYTES) -> None:
    """Copy the regular files of a submission folder; skip links, devices and oversized files."""
    total = 0
    for folder, dirs, files in os.walk(src, followlinks=False):
        rel = Path(folder).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            total += path.stat().st_size
            if total > limit:
                raise SubmissionError(f"{src}: larger than {limit} bytes")
            shutil.copyfile(path, dst / rel / name)


def pack(folder: Path, limit: int = MAX_SUBMISSION_BYTES) -> bytes:
    """A submission folder's regular files (no links, devices or empty folders) as an
    uncompressed tar; SubmissionError if they add up to more than `limit` bytes."""
    buf, total = io.BytesIO(), 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for here, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(here, d)))
            for name in sorted(files):
                path = Path(here, name)
                if path.is_symlink() or not path.is_file():
                    continue
                total += path.stat().st_size
                if total > limit:
                    raise SubmissionError(f"{folder}: larger than {limit} bytes")
                info = tarfile.TarInfo(str(path.relative_to(folder)))
                info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
                with path.open("rb") as f:
                    tar.addfile(info, f)
    return buf.getvalue()


def unpack(data: bytes, dst: Path, limit: int = MAX_SUBMISSION_BYTES) -> None:
    """The files `pack` wrote, into `dst`: regular files only, inside `dst`, at most `limit`
    bytes in all (a crafted tar raises SubmissionError before anything is written)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            if (any(not m.isfile() or m.name.startswith("/") for m in members)
                    or sum(m.size for m in members) > limit):
                raise SubmissionError("the submission's files are not as packed (links, devices, "
                                      "absolute paths, or too large)")
            dst.mkdir(parents=True)
            tar.extractall(dst, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise SubmissionError(f"the submission's files could not be unpacked ({exc})") from None
