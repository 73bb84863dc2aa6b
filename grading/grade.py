"""Grade a folder of submissions: in parallel, each in a sandbox, into nbgrader's gradebook.

Submissions follow nbgrader's layout, SUBMISSIONS/<student>/<assignment>/exercises.ipynb (with
nbgrader's timestamp.txt and submission_secret.txt when `nbgrader collect` put them there), one
assignment per framework. Results go to the course folder (course/ by default): gradebook.db
(nbgrader's), grades.csv (nbgrader's CSV export), feedback/<student>/<assignment>/ (the page,
with nbgrader's files, for `nbgrader release_feedback`) and autograded/<student>/<assignment>/
(the executed notebook, for formgrader).

Each submission travels to a Dask worker as a grading.engine.Job (an embedded LocalCluster on
this machine, or a cluster's scheduler), which grades it with grading.submission.grade_one (a
sandboxed kernel runs it, fresh sandboxed processes check its exports) and answers with a
bounded Outcome. Only this process writes the gradebook, one transaction per submission
(grading.gradebook), as each Outcome arrives: what an instructor entered is kept, a submission already
graded with the same files is not graded again (unless `force`), and a batch killed at any
moment grades on from where it stopped when started again.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

from grading import checks, engine, files, sandbox
from grading.course import (COURSE_ID, NOTEBOOK, SOLUTIONS, TEMPLATES, load_config, points,
                            put_alembic_on_path)
from grading.gradebook import (GradebookLocked, Late, Recorded, answer_hashes, db_url,
                               digest_of, late_penalty, patiently, record, recorded)
from grading.limits import LOCK_WAIT, Limits
from grading.submission import Graded


@dataclass
class Result:
    student: str
    assignment: str
    score: float
    max_score: float
    error: str        # why the submission could not run at all ("" if it ran)
    seconds: float


@dataclass(frozen=True)
class Found:
    """One submission to grade: who, what, where, and nbgrader's timestamp (None if it has
    none)."""

    student: str
    assignment: str
    folder: Path
    timestamp: str | None


def _timestamp(folder: Path) -> tuple[str | None, str]:
    """nbgrader's timestamp of a submission, and a problem line ("" if none)."""
    from nbgrader.utils import parse_utc

    path = folder / "timestamp.txt"
    if not path.is_file() or path.is_symlink():
        return None, f"{path}: missing (not submitted through nbgrader?): graded without a time, never late"
    try:
        text = path.read_text(encoding="utf-8")[:100].strip()
        parse_utc(text)
        return text, ""
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None, f"{path}: not a timestamp: graded without a time, never late"


def find_submissions(folder: Path, source: Path = SOLUTIONS, roster: set[str] | None = None
                     ) -> tuple[list[Found], list[str]]:
    """Every SUBMISSIONS/<student>/<assignment>/, and one line per problem: a folder that is
    not a known assignment, a student not in the roster (when there is one), two folders of
    one student (names equal but for case or Unicode form: the later submission is graded),
    a missing or malformed timestamp."""
    import unicodedata

    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder")
    assignments = sorted(p.name for p in source.iterdir() if (p / f"{NOTEBOOK}.ipynb").is_file())
    found, problems = {}, []
    for student in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        if roster is not None and student.name not in roster:
            problems.append(f"{student}: student {student.name!r} is not in the course's roster "
                            f"(nbgrader db student list); skipped")
            continue
        for sub in sorted(p for p in student.iterdir() if p.is_dir() and not p.is_symlink()):
            if sub.name not in assignments:
                problems.append(f"{sub}: unknown assignment {sub.name!r} (expected one of "
                                f"{', '.join(assignments)}); skipped")
                continue
            ts, problem = _timestamp(sub)
            if problem:
                problems.append(problem)
            key = (unicodedata.normalize("NFKC", student.name).casefold(), sub.name)
            item = Found(student.name, sub.name, sub, ts)
            other = found.get(key)
            if other is not None:
                later, earlier = sorted((other, item), key=lambda f: _order(f.timestamp),
                                        reverse=True)
                problems.append(f"{earlier.folder}: a second submission of {later.student!r} "
                                f"(also {later.folder}); graded the later one only")
                item = later
            found[key] = item
    return sorted(found.values(), key=lambda f: (f.student, f.assignment)), problems


def _order(timestamp: str | None):
    from nbgrader.utils import parse_utc

    return parse_utc(timestamp) if timestamp else parse_utc("1970-01-01 00:00:00 UTC")


def prepare_course(course: Path, assignments: set[str], students: set[str] = frozenset(),
                   source: Path = SOLUTIONS) -> None:
    """Create or update the course: its folders (the exchange included), the gradebook with
    the assignments (from the solutions: their graded cells and points, written answers
    included) and the students. An assignment already known keeps its due date."""
    from nbgrader.api import Gradebook
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    put_alembic_on_path()
    course.mkdir(parents=True, exist_ok=True)
    c = load_config(course, source)
    c.Application.log_level = "WARN"
    install_templates()
    exchange = Path(c.Exchange.root)
    if not exchange.exists():
        exchange.mkdir(parents=True)
        exchange.chmod(0o1777)  # as nbgrader makes it: every student can submit into it
    api = NbGraderAPI(CourseDirectory(config=c), config=c)
    with Gradebook(c.CourseDirectory.db_url, COURSE_ID) as gb:
        known = {a.name: _graded_points(a) for a in gb.assignments}
    # An assignment is made again when its points changed, or when a run killed while nbgrader
    # was generating it left the assignment without its notebook (known, no points).
    stale = {a for a in assignments if a in known
             and known[a] != points(source / a / f"{NOTEBOOK}.ipynb", written=True)}
    for assignment in sorted((assignments - set(known)) | stale):
        made = api.generate_assignment(assignment, force=True, create=True)
        if not made["success"]:
            raise SystemExit(f"nbgrader could not generate {assignment}: {made['error']}")
    if students:
        with Gradebook(c.CourseDirectory.db_url, COURSE_ID) as gb:
            for student in sorted(students):
                gb.update_or_create_student(student)


def _graded_points(assignment) -> dict[str, float] | None:
    """The points of an assignment's graded cells as the gradebook has them; None where the
    gradebook has no notebook for it."""
    for notebook in assignment.notebooks:
        if notebook.name == NOTEBOOK:
            return {g.name: g.max_score for g in notebook.grade_cells}
    return None


def install_templates() -> None:
    """Formgrader's offline MathJax stand-in (grading/templates/formgrade), where nbconvert
    finds it before its own: this environment's share/jupyter. Where that cannot be written,
    formgrader's grading page still works, fetching MathJax from the internet."""
    src = TEMPLATES / "formgrade" / "mathjax.html.j2"
    dst = Path(sys.prefix, "share", "jupyter", "nbconvert", "templates", "formgrade", src.name)
    try:
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    except OSError:
        pass


def roster(course: Path) -> set[str]:
    from nbgrader.api import Gradebook

    with Gradebook(db_url(course), COURSE_ID) as gb:
        return {s.id for s in gb.students}


def export_csv(course: Path) -> Path:
    """grades.csv, by nbgrader's own CSV export (what `nbgrader export` writes)."""
    from nbgrader.apps import NbGraderAPI  # noqa: F401 (loads nbgrader's plugins)
    from nbgrader.api import Gradebook
    from nbgrader.plugins.export import CsvExportPlugin
    from traitlets.config import Config

    out = course / "grades.csv"
    c = Config()
    c.CsvExportPlugin.to = str(out)
    with Gradebook(db_url(course), COURSE_ID) as gb:
        CsvExportPlugin(config=c).export(gb)
    return out


def _late_line(late: Late | None) -> str:
    if late is None or late.seconds <= 0:
        return ""
    hours = late.seconds / 3600
    text = f"Submitted {hours:.1f} h after the due date"
    if not late.penalty:
        return text + " (no penalty)."
    return text + f": late penalty {late.penalty:g} point{'' if late.penalty == 1 else 's'}."


def _scores(pts: dict[str, float], g: Graded | None) -> dict[str, float]:
    return g.scores(pts) if g else {gid: 0.0 for gid in pts}


def _summary_html(student: str, assignment: str, pts: dict[str, float], g: Graded | None,
                  error: str, late: Late | None, scores: dict[str, float]) -> str:
    rows, total = [], 0.0
    for gid, possible in pts.items():
        found = g.checks.get(gid, []) if g else []
        got = scores[gid]
        total += got
        items = "".join(
            f"<li>{'&#10004;' if c.passed else '&#10008;'} {escape(c.name)}"
            + (f" <em>({escape(c.detail)})</em>" if c.detail and not c.passed else "")
            + "</li>" for c in found)
        why = g.export_errors.get(gid) if g else ""
        note = f"<p>Your functions could not be called: <code>{escape(why)}</code></p>" if why else ""
        rows.append(f"<tr><td>{escape(gid)}</td><td>{got:g} / {possible:g}</td>"
                    f"<td>{note}<ul>{items}</ul></td></tr>")
    problem = error or (g.problem if g else "")
    late_text = _late_line(late)
    return (f"<h1>{escape(assignment)}: {escape(student)}</h1>"
            f"<p><strong>Score: {total:g} / {sum(pts.values()):g}</strong> (automatic checks; "
            f"written answers are graded by hand)</p>"
            + (f"<p>{escape(late_text)}</p>" if late_text else "")
            + (f"<p>Note: {escape(problem)}</p>" if problem else "")
            + "<table border='1' cellpadding='4'><tr><th>graded cell</th><th>points</th>"
              "<th>checks</th></tr>" + "".join(rows) + "</table>")


def feedback_page(student: str, assignment: str, pts: dict[str, float], g: Graded | None,
                  error: str, late: Late | None = None,
                  scores: dict[str, float] | None = None) -> str:
    """The feedback page: the score table (`scores`, as recorded; scored here if not given),
    then the executed notebook. A failure while rendering the notebook keeps the score table
    (the score is recorded regardless)."""
    scores = _scores(pts, g) if scores is None else scores
    summary = _summary_html(student, assignment, pts, g, error, late, scores)
    body = ""
    if g and g.notebook:
        try:
            import nbformat
            from nbconvert import HTMLExporter

            nb = nbformat.read(g.notebook, as_version=4)
            # sanitize_html: a student's <script> must not run in the grader's browser; the
            # template (grading/templates/d2l-feedback) loads no script from any host.
            html, _ = HTMLExporter(template_name="d2l-feedback", sanitize_html=True,
                                   extra_template_basedirs=[str(TEMPLATES)]).from_notebook_node(nb)
            body = html
        except Exception as exc:  # noqa: BLE001  (feedback must never cost the score)
            body = f"<p>(the notebook could not be rendered: {escape(type(exc).__name__)})</p>"
    if body and "<body" in body:
        i = body.index(">", body.index("<body")) + 1
        return body[:i] + summary + body[i:]
    return f"<html><body>{summary}{body}</body></html>\n"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_feedback(course: Path, found: Found, page: str, g: Graded | None,
                   known: Recorded | None) -> tuple[str, str]:
    """Write the feedback folder as `nbgrader release_feedback` reads it (the page, the
    submission's timestamp.txt and submission_secret.txt) and the autograded notebook for
    formgrader. A page that differs from the one this grader last wrote was edited by hand:
    it is kept, and the new page goes to feedback-regraded/ instead. Returns (hash of the page
    recorded as ours, problem line or "")."""
    import secrets as _secrets

    data = page.encode()
    folder = course / "feedback" / found.student / found.assignment
    target, problem = folder / f"{NOTEBOOK}.html", ""
    if target.is_file() and known is not None and _sha(target.read_bytes()) != known.feedback:
        target = course / "feedback-regraded" / found.student / found.assignment / f"{NOTEBOOK}.html"
        problem = (f"{folder / f'{NOTEBOOK}.html'}: edited by hand since it was written, so it is "
                   f"kept; the new feedback is {target}")
        ours = known.feedback
    else:
        ours = _sha(data)
    _atomic_write(target, data)
    for name in ("timestamp.txt", "submission_secret.txt"):
        src = found.folder / name
        if src.is_file() and not src.is_symlink() and src.stat().st_size < 4096:
            content = src.read_bytes()
        elif name == "timestamp.txt":
            content = (found.timestamp or time.strftime("%Y-%m-%d %H:%M:%S.000000 UTC",
                                                        time.gmtime())).encode()
        elif (folder / name).is_file():
            continue
        else:  # release_feedback needs one; without nbgrader's submit there is nothing to fetch with
            content = _secrets.token_hex(16).encode()
        _atomic_write(folder / name, content)
    if g and g.notebook:
        dst = course / "autograded" / found.student / found.assignment
        _atomic_write(dst / f"{NOTEBOOK}.ipynb", g.notebook.read_bytes())
        if found.timestamp:
            _atomic_write(dst / "timestamp.txt", found.timestamp.encode())
    return ours, problem


def _late_plugin(config):
    """nbgrader's configured late-penalty plugin (AssignLatePenalties.plugin_class)."""
    from nbgrader.preprocessors import AssignLatePenalties

    return AssignLatePenalties(config=config).plugin_class(config=config)


def grade(submissions: Path, course: Path, jobs: int, limits: Limits = Limits(),
          progress: bool = True, source: Path = SOLUTIONS, report=print, force: bool = False,
          lock_wait: float = LOCK_WAIT, scheduler: str | None = None,
          tls: engine.TLS | None = None) -> list[Result]:
    """Grade every new or changed submission (all with `force`); one Result per graded one.
    On an embedded cluster with `jobs` sandboxes at once, or on the Dask cluster whose
    scheduler is at `scheduler`. A gradebook locked by another program longer than
    `lock_wait` seconds: at the start, the run ends with one line (nothing changed); later,
    that submission is not recorded (one line) and the next run grades it."""
    why = None if scheduler else sandbox.check_available()  # (a cluster's workers say theirs)
    if why:
        raise SystemExit(f"cannot grade safely: {why}")
    if not scheduler and not sandbox.tmpfs_sized():
        report("warning: this bubblewrap cannot size a tmpfs (0.8 or later can): a submission's "
               "/tmp and /dev/shm are limited only by the memory limit's cgroup, and not at all "
               "when grading as an ordinary user")
    submissions, course, source = submissions.resolve(), course.resolve(), source.resolve()
    config = load_config(course, source)
    try:
        return _grade(submissions, course, source, config, jobs, limits, progress, report, force,
                      lock_wait, scheduler, tls)
    except GradebookLocked as exc:
        raise SystemExit(f"{exc}: nothing more was graded; run again when it is free") from None


def _grade(submissions, course, source, config, jobs, limits, progress, report, force, lock_wait,
           scheduler, tls) -> list[Result]:
    create = bool(config.Autograde.get("create_student", True))
    if not create and not (course / "gradebook.db").is_file():
        raise SystemExit(f"{course / 'gradebook.db'}: no gradebook, so no roster "
                         f"(Autograde.create_student is False)")
    found_all, problems = find_submissions(
        submissions, source, None if create else patiently(course, lambda: roster(course), lock_wait))
    for line in problems:
        report(line)
    if not found_all:
        raise SystemExit(f"{submissions}: no submissions (expected <student>/<assignment>/{NOTEBOOK}.ipynb)")
    names = {f.assignment for f in found_all}
    pts = {a: points(source / a / f"{NOTEBOOK}.ipynb") for a in names}
    for a in pts:
        missing = set(checks.load(a).EXPORTS) ^ set(pts[a])
        if missing:
            raise SystemExit(f"{source / a}: graded cells and grading.checks.{a} disagree on {sorted(missing)}")
    patiently(course, lambda: prepare_course(course, names, {f.student for f in found_all}, source),
              lock_wait)
    # What decides a grade besides the files: the assignment's checks and its source notebook.
    grader_of = {a: (Path(checks.load(a).__file__).read_bytes(),
                     (source / a / f"{NOTEBOOK}.ipynb").read_bytes()) for a in names}
    digests = {f: digest_of(f.folder, *grader_of[f.assignment]) for f in found_all}
    known = recorded(course, lock_wait)
    todo = [f for f in found_all
            if force or known.get((f.student, f.assignment), Recorded("", {}, "", 0)).digest != digests[f]]
    skipped = len(found_all) - len(todo)
    if skipped:
        report(f"{skipped} submission(s) already graded with these files: not graded again "
               f"(--force regrades them)")
    results: list[Result] = []
    if todo:
        results = _grade_all(todo, digests, known, pts, course, jobs, limits, progress, report,
                             config, lock_wait, scheduler, tls)
    patiently(course, lambda: export_csv(course), lock_wait)
    return results


def _grade_all(todo, digests, known, pts, course, jobs, limits, progress, report, config,
               lock_wait, scheduler, tls) -> list[Result]:
    """Send each submission to the cluster as a Job and record each grade as it arrives."""
    from tqdm import tqdm

    seed = random.SystemRandom().randrange(1, 2**31)
    late_plugin = _late_plugin(config)
    here = engine.environment().digest
    results: list[Result] = []

    def job(f: Found) -> engine.Job:
        return engine.Job(f.student, f.assignment, str(f.folder), files.pack(f.folder), seed,
                          limits, here)

    def receive(i: int, f: Found, outcome: engine.Outcome | str, tmp: Path) -> Result | None:
        if isinstance(outcome, str):  # no usable answer: not recorded, graded next run
            report(f"{f.folder}: {outcome}")
            return None
        if outcome.fatal:
            raise SystemExit(outcome.error)
        if outcome.refused:
            report(f"{f.folder}: {outcome.refused}; not recorded")
            return None
        error = outcome.error
        if error and not error.startswith(str(f.folder)):
            error = f"{f.folder}: {error}"
        g = None if error else outcome.graded(f.student, f.assignment, tmp / str(i))
        return _record_one(f, g, error, outcome.seconds, pts[f.assignment], course, digests[f],
                           known.get((f.student, f.assignment)), late_plugin, report, lock_wait)

    # The executed notebooks wait in a work folder until their feedback is written; the next
    # run removes it if this one is killed.
    tmp = engine.work_root()
    try:
        with engine.cluster(scheduler, jobs, tls) as client:
            admitted = engine.admit(client, report)
            with tqdm(total=len(todo), unit="submission", disable=not progress) as bar:
                for i, (f, outcome) in enumerate(engine.run_jobs(client, todo, job, admitted)):
                    bar.update()
                    result = receive(i, f, outcome, tmp)
                    if result is not None:
                        results.append(result)
                        bar.set_postfix_str(f"{f.student}/{f.assignment} {result.score:g}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        engine.remove_dead_work_folders()  # killed runs whose processes outlived our start
    return results


def _record_one(f: Found, g: Graded | None, error: str, took: float, p: dict[str, float],
                course: Path, digest: str, known: Recorded | None, late_plugin,
                report, lock_wait: float) -> Result | None:
    """Feedback first, then the grade (one transaction): a run killed in between grades this
    submission again next time, and the page it wrote then is recognised as its own."""
    scores = _scores(p, g)
    comments = {gid: "; ".join(f"{'passed' if c.passed else 'failed'}: {c.name}"
                               for c in (g.checks.get(gid, []) if g else []))
                or f"Not graded: {error}" for gid in p}
    answers = answer_hashes(g.notebook if g else None)
    if error:
        report(error)
    seconds = _seconds_late(course, f) if f.timestamp else 0.0
    # (the penalty on the automatic score; the gradebook's applies to the whole, hand-given
    # points included)
    late = Late(seconds, late_penalty(late_plugin, f.student, sum(scores.values()), seconds), ())
    try:
        ours, problem = write_feedback(course, f, feedback_page(f.student, f.assignment, p, g,
                                                                error, late, scores), g, known)
        if problem:
            report(problem)
    except Exception as exc:  # noqa: BLE001  (the grade is still recorded)
        report(f"{f.student}/{f.assignment}: feedback not written ({type(exc).__name__}: {exc})")
        ours = known.feedback if known else ""
    try:
        done = record(course, f.student, f.assignment, scores, comments, timestamp=f.timestamp,
                      digest=digest, answers=answers, feedback=ours, late_plugin=late_plugin,
                      wait=lock_wait)
    except GradebookLocked as exc:
        report(f"{exc}: {f.student}/{f.assignment} not recorded; the next run grades it again")
        return None
    for gid in done.flagged:
        report(f"{f.student}/{f.assignment}: {gid} was graded by hand and the answer has changed "
               f"since: the hand-given grade is kept and flagged for review in formgrader")
    return Result(f.student, f.assignment, sum(scores.values()), sum(p.values()), error, took)


def _seconds_late(course: Path, f: Found) -> float:
    """Seconds between the assignment's due date (nbgrader's gradebook) and the timestamp."""
    from nbgrader.api import Gradebook
    from nbgrader.utils import parse_utc

    with Gradebook(db_url(course), COURSE_ID) as gb:
        due = gb.find_assignment(f.assignment).duedate
    if due is None:
        return 0.0
    return max(0.0, (parse_utc(f.timestamp) - parse_utc(due)).total_seconds())
