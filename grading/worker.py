"""Grade one submission in a private course folder (run by `python -m grading grade`).

`run(job)` is called in a process forked from a server that has imported nbgrader once
(grading.grade), or from the command line:

    python -m grading.worker JOB.json

JOB.json says which student and assignment, where the submission is, which gradebook copy to
start from, the limits and what the kernel must not see. The worker copies the submission
(regular files only: a symbolic link could point at the solutions), runs nbgrader's autograde
with the sandboxed kernel (grading.sandbox) and writes the feedback. It prints one line of JSON:
{"success": bool, "error": str}. The grades stay in the worker's gradebook copy, which the
grading process merges (grading.gradebook).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

MAX_SUBMISSION_BYTES = 50 * 2**20


def copy_submission(src: Path, dst: Path) -> None:
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
            if total > MAX_SUBMISSION_BYTES:
                raise ValueError(f"{src}: submission larger than {MAX_SUBMISSION_BYTES} bytes")
            shutil.copyfile(path, dst / rel / name)


from nbgrader.apps import NbGraderAPI  # noqa: E402  (imported once, in the fork server)
from nbgrader.coursedir import CourseDirectory  # noqa: E402
from traitlets.config import Config  # noqa: E402

from grading import sandbox  # noqa: E402
from grading.course import configure  # noqa: E402


def run(job: dict) -> dict:
    work = Path(job["work"])
    course, home = work / "course", work / "home"
    student, assignment = job["student"], job["assignment"]
    course.mkdir(parents=True)
    (home / "scratch").mkdir(parents=True)
    shutil.copyfile(job["template_db"], course / "gradebook.db")
    copy_submission(Path(job["submission"]), course / "submitted" / student / assignment)

    run_dir = course / "autograded" / student / assignment
    # The kernel sees its own run folder and home; the grader's home is hidden too, except the
    # Python installation when it lives there.
    box = {"home": str(home), "work": [str(run_dir), str(home)],
           "expose": [sys.base_prefix, sys.prefix],
           "hide": job["hide"] + [str(course), os.path.expanduser("~")]}
    (work / "sandbox.json").write_text(json.dumps(box))
    kernel_env = dict(job["kernel_env"], D2L_SCRATCH=str(home / "scratch"))
    name = sandbox.kernelspec(work / "jupyter", work / "sandbox.json", kernel_env)
    os.environ["JUPYTER_PATH"] = str(work / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(work / "runtime")

    c = Config()
    configure(c, root=course, timeout=job["timeout"], output_limit=job["output_limit"],
              kernel_name=name, source=Path(job["source"]))
    api = NbGraderAPI(CourseDirectory(config=c), config=c)
    graded = api.autograde(assignment, student, force=True, create=True)
    if not graded["success"]:  # nbgrader's log holds the real reason, its error only a summary
        return {"success": False, "error": (graded.get("log") or graded.get("error") or "")[-4000:]}
    feedback = api.generate_feedback(assignment, student, force=True)
    if not feedback["success"]:
        return {"success": False, "error": (feedback.get("log") or feedback.get("error") or "")[-4000:]}
    return {"success": True, "error": ""}


def safe_run(job: dict) -> dict:
    try:
        return run(job)
    except Exception as exc:  # reported to the grading process, which records a zero
        return {"success": False, "error": f"{type(exc).__name__}: {exc}"}


def child(job: dict, conn) -> None:
    """Entry point of a forked grading process: its own session, so that the grading process
    can end it and everything it started (the kernel, anything the kernel spawned) at once."""
    os.setsid()
    conn.send(safe_run(job))
    conn.close()


def main() -> None:
    print(json.dumps(safe_run(json.loads(Path(sys.argv[1]).read_text()))))


if __name__ == "__main__":
    main()
