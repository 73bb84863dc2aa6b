"""Grade a folder of submissions: in parallel, each in a sandbox, into nbgrader's gradebook.

Submissions follow nbgrader's layout, SUBMISSIONS/<student>/<assignment>/exercises.ipynb, with
one assignment per framework. Results go to the course folder (course/ by default):
gradebook.db (nbgrader's), grades.csv (one row per student and assignment),
feedback/<student>/<assignment>/exercises.html, and autograded/<student>/<assignment>/ (the
executed notebook, for nbgrader's formgrader and the 0-point written answers).

Each submission: grading.submission.grade_one (a sandboxed kernel runs it, a fresh sandboxed
process checks its exports). Only this process writes the gradebook, one transaction per
submission, replacing that student's earlier grade for that assignment.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from html import escape
from pathlib import Path

from grading import checks, sandbox
from grading.course import (CELL_TIMEOUT, NOTEBOOK, OUTPUT_LIMIT, SOLUTIONS, configure, points,
                            put_alembic_on_path)
from grading.submission import (Graded, SubmissionError, grade_one, kernel_env, references,
                                thread_env)
from grading.submission import ReferenceError as ReferenceError_


@dataclass
class Result:
    student: str
    assignment: str
    score: float
    max_score: float
    error: str        # why the submission could not run at all ("" if it ran)
    seconds: float


def find_submissions(folder: Path, source: Path = SOLUTIONS
                     ) -> tuple[list[tuple[str, str, Path]], list[str]]:
    """(student, assignment, folder) of every SUBMISSIONS/<student>/<assignment>/, and one
    line per folder that is not a known assignment."""
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder")
    assignments = sorted(p.name for p in source.iterdir() if (p / f"{NOTEBOOK}.ipynb").is_file())
    found, problems = [], []
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        for sub in sorted(p for p in student.iterdir() if p.is_dir() and not p.is_symlink()):
            if sub.name not in assignments:
                problems.append(f"{sub}: unknown assignment {sub.name!r} (expected one of "
                                f"{', '.join(assignments)}); skipped")
            else:
                found.append((student.name, sub.name, sub))
    return found, problems


def prepare_course(course: Path, assignments: set[str], students: set[str],
                   source: Path = SOLUTIONS) -> None:
    """Create or update the course gradebook: the assignments (from the solutions) and students."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    put_alembic_on_path()
    course.mkdir(parents=True, exist_ok=True)
    c = Config()
    configure(c, root=course, source=source)
    c.Application.log_level = "WARN"
    api = NbGraderAPI(CourseDirectory(config=c), config=c)
    with Gradebook(c.CourseDirectory.db_url, "d2l-io") as gb:
        known = {a.name for a in gb.assignments}
    for assignment in sorted(assignments - known):
        made = api.generate_assignment(assignment, force=True, create=True)
        if not made["success"]:
            raise SystemExit(f"nbgrader could not generate {assignment}: {made['error']}")
    with Gradebook(c.CourseDirectory.db_url, "d2l-io") as gb:
        for student in sorted(students):
            gb.update_or_create_student(student)


def record(course: Path, student: str, assignment: str, scores: dict[str, float],
           comments: dict[str, str]) -> None:
    """Write one submission's grades in one transaction, replacing any earlier grade."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    # nbgrader's add_submission makes SQLAlchemy warn about its own cascades (harmless).
    warnings.filterwarnings("ignore", category=SAWarning)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "d2l-io") as gb:
        try:
            gb.remove_submission(assignment, student)
        except MissingEntry:
            pass
        submission = gb.add_submission(assignment, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                if grade.name in scores:
                    grade.auto_score = scores[grade.name]
                    grade.needs_manual_grade = False
            for comment in notebook.comments:
                if comment.name in comments:
                    comment.auto_comment = comments[comment.name]
        gb.db.commit()


def export_csv(course: Path) -> Path:
    from nbgrader.apps import NbGraderAPI  # noqa: F401 (loads nbgrader's plugins)
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin
    from traitlets.config import Config

    out = course / "grades.csv"
    c = Config()
    c.CsvExportPlugin.to = str(out)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "d2l-io") as gb:
        CsvExportPlugin(config=c).export(gb)
    return out


def _summary_html(student: str, assignment: str, pts: dict[str, float], g: Graded | None,
                  error: str) -> str:
    rows, total = [], 0.0
    for gid, possible in pts.items():
        found = g.checks.get(gid, []) if g else []
        got = checks.score(possible, found)
        total += got
        items = "".join(
            f"<li>{'&#10004;' if c['passed'] else '&#10008;'} {escape(c['name'])}"
            + (f" <em>({escape(c['detail'])})</em>" if c["detail"] and not c["passed"] else "")
            + "</li>" for c in found)
        why = g.export_errors.get(gid) if g else ""
        note = f"<p>Your functions could not be called: <code>{escape(why)}</code></p>" if why else ""
        rows.append(f"<tr><td>{escape(gid)}</td><td>{got:g} / {possible:g}</td>"
                    f"<td>{note}<ul>{items}</ul></td></tr>")
    problem = error or (g.problem if g else "")
    return (f"<h1>{escape(assignment)}: {escape(student)}</h1>"
            f"<p><strong>Score: {total:g} / {sum(pts.values()):g}</strong></p>"
            + (f"<p>Note: {escape(problem)}</p>" if problem else "")
            + "<table border='1' cellpadding='4'><tr><th>graded cell</th><th>points</th>"
              "<th>checks</th></tr>" + "".join(rows) + "</table>")


def write_feedback(course: Path, student: str, assignment: str, pts: dict[str, float],
                   g: Graded | None, error: str) -> None:
    """The feedback page: the score table, then the executed notebook. A failure while
    rendering the notebook keeps the score table (the score is already recorded)."""
    page = course / "feedback" / student / assignment / f"{NOTEBOOK}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    summary = _summary_html(student, assignment, pts, g, error)
    body = ""
    if g and g.notebook:
        try:
            import nbformat
            from nbconvert import HTMLExporter

            nb = nbformat.read(g.notebook, as_version=4)
            # sanitize_html: a student's <script> must not run in the grader's browser.
            html, _ = HTMLExporter(template_name="classic", sanitize_html=True).from_notebook_node(nb)
            body = html
        except Exception as exc:  # noqa: BLE001  (feedback must never cost the score)
            body = f"<p>(the notebook could not be rendered: {escape(type(exc).__name__)})</p>"
    if body and "<body" in body:
        i = body.index(">", body.index("<body")) + 1
        page.write_text(body[:i] + summary + body[i:])
    else:
        page.write_text(f"<html><body>{summary}{body}</body></html>\n")
    if g and g.notebook:
        dst = course / "autograded" / student / assignment
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        shutil.copyfile(g.notebook, dst / f"{NOTEBOOK}.ipynb")


def grade(submissions: Path, course: Path, jobs: int, timeout: int = CELL_TIMEOUT,
          output_limit: int = OUTPUT_LIMIT, progress: bool = True, source: Path = SOLUTIONS,
          memory: int = sandbox.MEMORY_LIMIT, processes: int = sandbox.PROCESS_LIMIT,
          report=print) -> list[Result]:
    from tqdm import tqdm

    why = sandbox.check_available()
    if why:
        raise SystemExit(f"cannot grade safely: {why}")
    if not sandbox.tmpfs_sized():
        report("warning: this bubblewrap cannot size a tmpfs (0.8 or later can): a submission's "
               "/tmp and /dev/shm are limited only by the memory limit's cgroup, and not at all "
               "when grading as an ordinary user")
    submissions, course, source = submissions.resolve(), course.resolve(), source.resolve()
    found, problems = find_submissions(submissions, source)
    for line in problems:
        report(line)
    if not found:
        raise SystemExit(f"{submissions}: no submissions (expected <student>/<assignment>/{NOTEBOOK}.ipynb)")
    pts = {a: points(source / a / f"{NOTEBOOK}.ipynb") for a in {a for _, a, _ in found}}
    for a in pts:
        missing = set(checks.load(a).EXPORTS) ^ set(pts[a])
        if missing:
            raise SystemExit(f"{source / a}: graded cells and grading.checks.{a} disagree on {sorted(missing)}")
    work_root = Path(tempfile.mkdtemp(prefix="d2l-grading-"))
    os.chmod(work_root, 0o700)
    env = dict(kernel_env(), **thread_env(max(1, (os.cpu_count() or 1) // jobs)),
               PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin", LANG="C.UTF-8")
    seed = random.SystemRandom().randrange(1, 2**31)
    results: list[Result] = []
    try:
        # The gradebook and the references are made while the first notebooks already run.
        with ThreadPoolExecutor(max_workers=len(pts) + 1) as side, \
                ThreadPoolExecutor(max_workers=jobs) as pool:
            course_ready = side.submit(prepare_course, course, set(pts),
                                       {s for s, _, _ in found}, source)
            refs = {a: work_root / "refs" / a for a in pts}
            refs_ready = {a: side.submit(references, a, seed, refs[a], env=env) for a in pts}

            def one(i: int, student: str, assignment: str, folder: Path):
                start = time.perf_counter()
                try:
                    g = grade_one(student, assignment, folder, work_root / f"{i:05d}",
                                  refs[assignment], seed, env=env, timeout=timeout,
                                  output_limit=output_limit, memory=memory, processes=processes,
                                  refs_ready=refs_ready[assignment].result)
                    return g, "", time.perf_counter() - start
                except SubmissionError as exc:
                    return None, str(exc), time.perf_counter() - start
                except ReferenceError_ as exc:
                    raise SystemExit(str(exc)) from None
                except Exception as exc:  # noqa: BLE001  (one submission never stops the batch)
                    return None, f"{folder}: could not be graded ({type(exc).__name__}: {exc})", \
                        time.perf_counter() - start

            with tqdm(total=len(found), unit="submission", disable=not progress) as bar:
                futures = {pool.submit(one, i, *item): item for i, item in enumerate(found)}
                for future in as_completed(futures):
                    student, assignment, folder = futures[future]
                    g, error, seconds = future.result()
                    course_ready.result()
                    p = pts[assignment]
                    scores = {gid: checks.score(p[gid], g.checks.get(gid, []) if g else [])
                              for gid in p}
                    comments = {gid: "; ".join(f"{'passed' if c['passed'] else 'failed'}: {c['name']}"
                                               for c in (g.checks.get(gid, []) if g else []))
                                or f"Not graded: {error}" for gid in p}
                    record(course, student, assignment, scores, comments)
                    try:
                        write_feedback(course, student, assignment, p, g, error)
                    except Exception as exc:  # noqa: BLE001  (the grade is already recorded)
                        report(f"{student}/{assignment}: feedback not written ({type(exc).__name__}: {exc})")
                    if error:
                        report(error)
                    results.append(Result(student, assignment, sum(scores.values()),
                                          sum(p.values()), error, seconds))
                    bar.set_postfix_str(f"{student}/{assignment} {sum(scores.values()):g}")
                    bar.update()
        export_csv(course)
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return results
