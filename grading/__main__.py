"""Command line: python -m grading {init,generate,grade,workbooks,handout} ..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grading.course import COURSE, NOTEBOOK, SOLUTIONS
from grading.limits import CELL_TIMEOUT, LOCK_WAIT, MEMORY_LIMIT, OUTPUT_LIMIT, PROCESS_LIMIT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="create the course: folders, exchange, gradebook with "
                       "every assignment (what formgrader needs to open)")
    i.add_argument("--course", type=Path, default=COURSE)
    r = sub.add_parser("generate", help="put the committed student workbook of ASSIGNMENT into "
                       "course/release/ (then: nbgrader release_assignment ASSIGNMENT)")
    r.add_argument("assignment")
    r.add_argument("--course", type=Path, default=COURSE)
    r.add_argument("--source", type=Path, default=SOLUTIONS)
    g = sub.add_parser("grade", help="autograde a folder of submissions")
    g.add_argument("submissions", type=Path, help="folder laid out as <student>/<assignment>/")
    g.add_argument("--course", type=Path, default=COURSE, help="where the gradebook, grades.csv "
                   "and feedback go (default: course/)")
    g.add_argument("--jobs", type=int, default=None, help="submissions graded at once on this "
                   "machine (default: one per core, as many as its memory holds at --memory)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="grade on the Dask cluster whose "
                   "scheduler is at ADDRESS (tls://host:8786) instead of on this machine")
    g.add_argument("--tls-ca", type=Path, help="the cluster's CA certificate (with --scheduler)")
    g.add_argument("--tls-cert", type=Path, help="this client's certificate (with --scheduler)")
    g.add_argument("--tls-key", type=Path, help="this client's private key (with --scheduler)")
    g.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    g.add_argument("--output-limit", type=int, default=OUTPUT_LIMIT, help="bytes of output per cell")
    g.add_argument("--memory", type=float, default=MEMORY_LIMIT / 2**30,
                   help="GB of memory per submission (default 4)")
    g.add_argument("--processes", type=int, default=PROCESS_LIMIT,
                   help="processes per submission (default 256)")
    g.add_argument("--source", type=Path, default=SOLUTIONS, help="the assignments' source "
                   "notebooks, <source>/<assignment>/exercises.ipynb (default: solutions/)")
    g.add_argument("--force", action="store_true", help="grade every submission again, also "
                   "those already graded with the same files")
    g.add_argument("--lock-wait", type=float, default=LOCK_WAIT, help="seconds to wait for a "
                   "gradebook another program (formgrader) holds locked (default 30)")
    w = sub.add_parser("workbooks", help="generate the student workbooks from the solutions")
    w.add_argument("--check", action="store_true", help="only say whether the committed "
                   "workbooks are up to date (exit 1 if not)")
    w.add_argument("--out", type=Path, help="write into this folder instead of notebooks/")
    h = sub.add_parser("handout", help="build what students get: no solutions, no hidden tests")
    h.add_argument("--out", type=Path, default=Path("handout"), help="folder to create")
    args = parser.parse_args(argv)
    if args.command == "init":
        from grading.grade import prepare_course

        names = {p.name for p in SOLUTIONS.iterdir() if (p / f"{NOTEBOOK}.ipynb").is_file()}
        prepare_course(args.course.resolve(), names)
        print(f"course ready in {args.course}: gradebook.db ({', '.join(sorted(names))}), exchange/")
        return 0
    if args.command == "generate":
        from grading.release import generate

        out = generate(args.assignment, args.course.resolve(), args.source.resolve())
        print(f"{out}: the student workbook, ready for `nbgrader release_assignment {args.assignment}`")
        return 0
    if args.command == "grade":
        from grading.grade import grade

        from grading.engine import TLS, sandboxes_here
        from grading.limits import Limits

        limits = Limits(cell_time=args.timeout, output=args.output_limit,
                        memory=int(args.memory * 2**30), processes=args.processes)
        tls_files = (args.tls_ca, args.tls_cert, args.tls_key)
        if any(tls_files) and not all(tls_files):
            parser.error("--tls-ca, --tls-cert and --tls-key go together")
        if any(tls_files) and not args.scheduler:
            parser.error("--tls-ca, --tls-cert and --tls-key need --scheduler")
        jobs = args.jobs or sandboxes_here(limits.memory)
        results = grade(args.submissions, args.course, jobs, limits, source=args.source,
                        force=args.force, lock_wait=args.lock_wait, scheduler=args.scheduler,
                        tls=TLS(*tls_files) if all(tls_files) else None)
        failed = [r for r in results if r.error]
        print(f"graded {len(results)} submissions into {args.course}: grades.csv, feedback/; "
              f"{len(failed)} could not run (scored 0)")
        return 0
    if args.command == "workbooks":
        from grading.workbooks import main as workbooks

        return workbooks(args.check, args.out)
    from grading.handout import build

    out = build(args.out)
    print(f"wrote the student handout to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
