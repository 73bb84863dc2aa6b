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


def regular_files(folder: Path):
    """Walk a folder of untrusted files without following links: (folder's path relative to
    `folder`, [paths of its regular files]) for it and every subfolder, in sorted order.
    Links, devices, FIFOs and sockets are left out, and so are linked folders."""
    for here, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(here, d)))
        paths = (Path(here, name) for name in sorted(names))
        yield (Path(here).relative_to(folder),
               [p for p in paths if not p.is_symlink() and p.is_file()])


def copy_submission(src: Path, dst: Path, limit: int = MAX_SUBMISSION_BYTES) -> None:
    """Copy the regular files of a submission folder, and its folders; skip links, devices and
    oversized files."""
    total = 0
    for rel, paths in regular_files(src):
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for path in paths:
            total += path.stat().st_size
            if total > limit:
                raise SubmissionError(f"{src}: larger than {limit} bytes")
            shutil.copyfile(path, dst / rel / path.name)


def pack(folder: Path, limit: int = MAX_SUBMISSION_BYTES) -> bytes:
    """A submission folder's regular files (no links, devices or empty folders) as an
    uncompressed tar; SubmissionError if they add up to more than `limit` bytes."""
    buf, total = io.BytesIO(), 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for _, paths in regular_files(folder):
            for path in paths:
                size = path.stat().st_size
                total += size
                if total > limit:
                    raise SubmissionError(f"{folder}: larger than {limit} bytes")
                info = tarfile.TarInfo(str(path.relative_to(folder)))
                info.size, info.mode, info.mtime = size, 0o644, 0
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
