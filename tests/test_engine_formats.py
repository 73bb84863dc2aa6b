"""Adversarial tests of the two wire formats of grading.engine: a worker's answer
(`Outcome.from_bytes` / `Outcome.to_bytes`) and a submission's archive (`pack` / `unpack`).

These cases were written from the formats' description (the promises each function makes to
its callers), not from the implementation: they play a hostile worker or a crafted submission
archive, and every refusal is checked for its exception type and for what it leaves on disk.
"""

from __future__ import annotations

import base64
import gzip
import inspect
import io
import json
import os
import posixpath
import stat
import tarfile
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grading.checks import Check
from grading.engine import BadResult, Outcome
from grading.files import SubmissionError, pack, unpack
from grading.limits import MAX_RESULT_BYTES, MAX_SUBMISSION_BYTES

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# The bounds the description gives for cut strings.
BOUNDS = {"worker": 300, "problem": 2000, "error": 2000, "refused": 2000}
EXPORT_ERROR_BOUND = 500
CHECK_NAME_BOUND = 300
CHECK_DETAIL_BOUND = 500


# --------------------------------------------------------------------------------------------
# Outcome helpers
# --------------------------------------------------------------------------------------------

def _enc(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")


def _checks_tuples(checks) -> dict:
    return {gid: [(c.name, c.passed, c.detail) for c in items] for gid, items in checks.items()}


def _outcome_fields(o: Outcome) -> dict:
    return {"worker": o.worker, "checks": _checks_tuples(o.checks),
            "export_errors": dict(o.export_errors), "notebook": o.notebook,
            "problem": o.problem, "error": o.error, "refused": o.refused, "fatal": o.fatal,
            "seconds": o.seconds, "timings": dict(o.timings)}


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _assert_well_formed(o) -> None:
    """What any Outcome that from_bytes hands back must look like."""
    assert isinstance(o, Outcome)
    for field, bound in BOUNDS.items():
        value = getattr(o, field)
        assert isinstance(value, str) and len(value) <= bound, (field, value)
    assert isinstance(o.checks, dict)
    for gid, items in o.checks.items():
        assert isinstance(gid, str) and isinstance(items, list)
        for c in items:
            assert isinstance(c, Check)
            assert isinstance(c.name, str) and len(c.name) <= CHECK_NAME_BOUND
            assert isinstance(c.detail, str) and len(c.detail) <= CHECK_DETAIL_BOUND
            assert c.passed is True or c.passed is False
    assert isinstance(o.export_errors, dict)
    for gid, msg in o.export_errors.items():
        assert isinstance(gid, str) and isinstance(msg, str) and len(msg) <= EXPORT_ERROR_BOUND
    assert o.notebook is None or isinstance(o.notebook, bytes)
    assert o.fatal is True or o.fatal is False
    assert isinstance(o.seconds, float)
    assert isinstance(o.timings, dict)
    assert all(isinstance(k, str) and _is_number(v) for k, v in o.timings.items())


def _read_or_refuse(data, **kw):
    """from_bytes must either answer a well-formed Outcome or raise BadResult."""
    try:
        o = Outcome.from_bytes(data, **kw)
    except BadResult:
        return None
    _assert_well_formed(o)
    return o


# --------------------------------------------------------------------------------------------
# Outcome: valid answers
# --------------------------------------------------------------------------------------------

def test_empty_object_gives_defaults():
    o = Outcome.from_bytes(b"{}")
    assert _outcome_fields(o) == {"worker": "", "checks": {}, "export_errors": {},
                                  "notebook": None, "problem": "", "error": "", "refused": "",
                                  "fatal": False, "seconds": 0.0, "timings": {}}
    assert isinstance(o.seconds, float)


def test_full_valid_answer_is_read():
    nb = b"\x00\x01{\"cells\": []}\xff"
    data = _enc({"worker": "w-1", "checks": {"q1": [{"name": "a", "passed": True, "detail": "ok"},
                                                    {"name": "b", "passed": False,
                                                     "detail": "bad"}]},
                 "export_errors": {"q2": "boom"}, "notebook": base64.b64encode(nb).decode(),
                 "problem": "p", "error": "e", "refused": "r", "fatal": True, "seconds": 1.5,
                 "timings": {"run": 1, "export": 0.25}})
    o = Outcome.from_bytes(data)
    assert _outcome_fields(o) == {"worker": "w-1",
                                  "checks": {"q1": [("a", True, "ok"), ("b", False, "bad")]},
                                  "export_errors": {"q2": "boom"}, "notebook": nb,
                                  "problem": "p", "error": "e", "refused": "r", "fatal": True,
                                  "seconds": 1.5, "timings": {"run": 1, "export": 0.25}}


def test_integer_seconds_becomes_float():
    o = Outcome.from_bytes(b'{"seconds": 3}')
    assert o.seconds == 3.0 and isinstance(o.seconds, float)


def test_raw_utf8_text_is_read():
    o = Outcome.from_bytes('{"worker": "é😀", "problem": "ünï"}'.encode("utf-8"))
    assert (o.worker, o.problem) == ("é😀", "ünï")


def test_empty_base64_notebook_is_empty_bytes_not_none():
    assert Outcome.from_bytes(b'{"notebook": ""}').notebook == b""
    assert Outcome.from_bytes(b'{"notebook": null}').notebook is None


@pytest.mark.parametrize("value", [1, 1.0, "true", "yes", "True", [True], {"v": True}, None,
                                   False, 0])
def test_only_json_true_passes_a_check(value):
    item = {"name": "n", "passed": value, "detail": ""}
    o = _read_or_refuse(_enc({"checks": {"g": [item]}}))
    if o is not None:
        assert [c.passed for c in o.checks["g"]] == [False]


def test_json_true_passes_a_check():
    o = Outcome.from_bytes(_enc({"checks": {"g": [{"name": "n", "passed": True}]}}))
    assert [c.passed for c in o.checks["g"]] == [True]


@pytest.mark.parametrize("value", [1, 1.0, "true", "yes", [True], {"v": True}, None, False, 0])
def test_fatal_only_if_json_true(value):
    o = Outcome.from_bytes(_enc({"fatal": value}))
    assert o.fatal is False
    assert Outcome.from_bytes(_enc({"fatal": True})).fatal is True


def test_check_items_that_are_not_objects_are_dropped():
    items = [1, "x", None, True, [], [{"name": "in-list", "passed": True}], 2.5,
             {"name": "kept", "passed": True, "detail": "d"}, "y"]
    o = Outcome.from_bytes(_enc({"checks": {"g": items, "h": [None]}}))
    assert _checks_tuples(o.checks) == {"g": [("kept", True, "d")], "h": []}


@pytest.mark.parametrize("field", sorted(BOUNDS))
def test_top_level_strings_are_cut(field):
    bound = BOUNDS[field]
    for text in ("x" * (bound * 10 + 7), "😀" * (bound + 1)):
        value = getattr(Outcome.from_bytes(_enc({field: text})), field)
        assert len(value) <= bound
        assert value[: bound // 2] == text[: bound // 2]


def test_export_error_is_cut():
    text = "e" * 100_000
    value = Outcome.from_bytes(_enc({"export_errors": {"g": text}})).export_errors["g"]
    assert len(value) <= EXPORT_ERROR_BOUND
    assert value[: EXPORT_ERROR_BOUND // 2] == text[: EXPORT_ERROR_BOUND // 2]


def test_check_name_and_detail_are_cut():
    name, detail = "n" * 50_000, "d" * 50_000
    (c,) = Outcome.from_bytes(_enc({"checks": {"g": [{"name": name, "passed": True,
                                                       "detail": detail}]}})).checks["g"]
    assert len(c.name) <= CHECK_NAME_BOUND and len(c.detail) <= CHECK_DETAIL_BOUND
    assert c.name[:100] == name[:100] and c.detail[:100] == detail[:100]
    assert c.passed is True


def test_strings_at_their_bound_are_kept_whole():
    o = Outcome(worker="😀" * 300, problem="p" * 2000, error="é" * 2000, refused="r" * 2000,
                export_errors={"g": "x" * 500},
                checks={"g": [Check("😀" * 300, True, "d" * 500)]})
    assert _outcome_fields(Outcome.from_bytes(o.to_bytes())) == _outcome_fields(o)


# --------------------------------------------------------------------------------------------
# Outcome: refusals
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["{}", None, 0, 1.5, ["{}"], {"worker": "w"}, object(),
                                  Path("x")], ids=lambda v: type(v).__name__ + ":" + str(v)[:20]
                         if type(v) is not object else "object")
def test_non_bytes_is_refused(data):
    with pytest.raises(BadResult):
        Outcome.from_bytes(data)


def test_size_limit_is_exclusive_of_exact_size():
    data = b"{}" + b" " * 98  # 100 bytes
    assert isinstance(Outcome.from_bytes(data, limit=100), Outcome)
    with pytest.raises(BadResult):
        Outcome.from_bytes(data + b" ", limit=100)
    with pytest.raises(BadResult):
        Outcome.from_bytes(_enc({"worker": "w" * 200}), limit=100)


def test_default_limit_is_max_result_bytes():
    assert inspect.signature(Outcome.from_bytes).parameters["limit"].default == MAX_RESULT_BYTES
    # A valid object padded to one byte over the limit.
    data = b"{}" + b" " * (MAX_RESULT_BYTES - 1)
    assert len(data) == MAX_RESULT_BYTES + 1
    with pytest.raises(BadResult):
        Outcome.from_bytes(data, limit=MAX_RESULT_BYTES)
    with pytest.raises(BadResult):
        Outcome.from_bytes(data)
    del data


NOT_JSON_OBJECT = [
    b"", b" ", b"{", b"}", b"nul", b"{'worker': 'w'}", b'{"worker": "w",}', b"\xff\xfe{}",
    b'{"worker": "\xff"}', b'{"worker": "\xc3"}', b"\x00", b"[]", b"[{}]", b"null", b"true",
    b"1", b'"{}"', b"1.5", b"{} {}", b"{}x",
    '{"worker": "w"}'.encode("utf-16"), '{"worker": "w"}'.encode("utf-32"),
    b"[" * 100_000, b"{" * 100_000, b'{"a":' * 100_000,
]


@pytest.mark.parametrize("data", NOT_JSON_OBJECT, ids=lambda d: repr(d[:24]))
def test_not_a_json_object_is_refused(data):
    with pytest.raises(BadResult):
        Outcome.from_bytes(data)


def _deep(n: int, inner="[]") -> str:
    return "[" * n + inner + "]" * n


WRONG_TYPES = [
    {"worker": 1}, {"worker": None}, {"worker": ["w"]}, {"worker": {"w": 1}}, {"worker": True},
    {"problem": 1}, {"problem": None}, {"problem": []}, {"error": 0}, {"error": False},
    {"error": {}}, {"refused": 1}, {"refused": True}, {"refused": ["no"]},
    {"checks": []}, {"checks": "x"}, {"checks": 1}, {"checks": None}, {"checks": True},
    {"checks": {"g": "x"}}, {"checks": {"g": {}}}, {"checks": {"g": None}}, {"checks": {"g": 1}},
    {"checks": {"g": {"name": "a", "passed": True}}},
    {"export_errors": []}, {"export_errors": "x"}, {"export_errors": None},
    {"export_errors": {"g": 1}}, {"export_errors": {"g": None}}, {"export_errors": {"g": ["e"]}},
    {"export_errors": {"g": True}},
    {"notebook": 1}, {"notebook": True}, {"notebook": []}, {"notebook": {}},
    {"notebook": "abc"}, {"notebook": "!!!!"}, {"notebook": "a"}, {"notebook": "é"},
    {"notebook": "aGVsbG8=!"}, {"notebook": "====" },
    {"seconds": True}, {"seconds": False}, {"seconds": "1"}, {"seconds": None},
    {"seconds": []}, {"seconds": {}},
    {"timings": []}, {"timings": "x"}, {"timings": 1}, {"timings": None},
    {"timings": {"a": True}}, {"timings": {"a": "1"}}, {"timings": {"a": None}},
    {"timings": {"a": [1]}}, {"timings": {"a": {}}},
]


@pytest.mark.parametrize("obj", WRONG_TYPES, ids=lambda o: json.dumps(o)[:40])
def test_wrong_field_type_is_refused(obj):
    with pytest.raises(BadResult):
        Outcome.from_bytes(_enc(obj))


@pytest.mark.parametrize("field", ["worker", "problem", "seconds", "timings", "export_errors",
                                   "checks", "notebook", "error"])
def test_deeply_nested_field_is_refused(field):
    # Too deep for a recursive parser, but valid JSON: a wrong type for every field.
    text = '{"%s": %s}' % (field, _deep(50_000))
    with pytest.raises(BadResult):
        Outcome.from_bytes(text.encode())


def test_moderately_nested_check_item_is_dropped():
    o = Outcome.from_bytes(('{"checks": {"g": [%s]}}' % _deep(400)).encode())
    assert o.checks == {"g": []}


# Inputs for which the description allows either answer: what is promised is only that nothing
# but BadResult escapes and that an Outcome, if any, is well formed.
EITHER = [
    bytearray(b"{}"), memoryview(b"{}"), b"\xef\xbb\xbf{}",
    b'{"seconds": 1' + b"0" * 400 + b"}", b'{"seconds": ' + b"1" * 5000 + b"}",
    b'{"timings": {"a": 1' + b"0" * 400 + b"}}", b'{"timings": {"a": ' + b"9" * 5000 + b"}}",
    b'{"seconds": 1e400}', b'{"seconds": -1e400}', b'{"seconds": NaN}',
    b'{"seconds": Infinity}', b'{"timings": {"a": NaN}}', b'{"seconds": -0}',
    b'{"worker": "\\ud800"}', b'{"worker": "\\udfff\\ud800"}',
    b'{"checks": {"\\ud800": [{"name": "\\udc00", "passed": true}]}}',
    b'{"export_errors": {"g": "\\ud800"}}', b'{"worker": "a\\u0000b"}',
    b'{"worker": "a", "worker": 1}', b'{"worker": 1, "worker": "a"}',
    b'{"checks": {"g": [{"name": 1, "passed": true}]}}',
    b'{"checks": {"g": [{"name": null, "passed": true, "detail": null}]}}',
    b'{"checks": {"g": [{"name": ["x"], "detail": {"y": 1}}]}}',
    b'{"checks": {"g": [{}]}}', b'{"checks": {"g": [{"passed": true}]}}',
    b'{"notebook": "aGVsbG8=\\n"}', b'{"notebook": "aGV sbG8="}', b'{"notebook": "-_-_"}',
    b'{"notebook": "\\ud800"}', b'{"unknown": 1, "other": [1, 2]}', b'{"__class__": "x"}',
    b'{"checks": {"g": [' + b'{"name": "x", "passed": true},' * 20_000 + b'1]}}',
]


@pytest.mark.parametrize("data", EITHER, ids=lambda d: repr(bytes(d[:30])))
def test_odd_inputs_raise_nothing_but_bad_result(data):
    _read_or_refuse(data)


# --------------------------------------------------------------------------------------------
# Outcome: property tests
# --------------------------------------------------------------------------------------------

def _text(max_size):
    return st.text(max_size=max_size)


finite = st.floats(allow_nan=False, allow_infinity=False)
checks_st = st.builds(Check, name=_text(CHECK_NAME_BOUND), passed=st.booleans(),
                      detail=_text(CHECK_DETAIL_BOUND))
outcomes = st.builds(
    Outcome,
    worker=_text(300),
    checks=st.dictionaries(st.text(max_size=20), st.lists(checks_st, max_size=4), max_size=4),
    export_errors=st.dictionaries(st.text(max_size=20), _text(EXPORT_ERROR_BOUND), max_size=3),
    notebook=st.none() | st.binary(max_size=300),
    problem=_text(2000), error=_text(2000), refused=_text(2000), fatal=st.booleans(),
    seconds=finite,
    timings=st.dictionaries(st.text(max_size=20), finite, max_size=4),
)


@FAST
@given(outcomes)
def test_outcome_round_trips(o):
    data = o.to_bytes()
    assert isinstance(data, bytes)
    back = Outcome.from_bytes(data)
    _assert_well_formed(back)
    assert _outcome_fields(back) == _outcome_fields(o)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_bad_result(data):
    _read_or_refuse(data)
    _read_or_refuse(data, limit=16)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=25,
)


@FAST
@given(json_values)
def test_arbitrary_json_values_raise_only_bad_result(value):
    o = _read_or_refuse(json.dumps(value).encode())
    if not isinstance(value, dict):
        assert o is None


FIELDS = ["worker", "checks", "export_errors", "notebook", "problem", "error", "refused",
          "fatal", "seconds", "timings"]
check_items = st.one_of(json_values, st.fixed_dictionaries(
    {}, optional={"name": json_values | st.text(), "passed": json_values,
                  "detail": json_values | st.text()}))
field_values = {
    "checks": st.dictionaries(st.text(max_size=5), st.lists(check_items, max_size=4),
                              max_size=3) | json_values,
    "export_errors": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "timings": st.dictionaries(st.text(max_size=5), json_values, max_size=3),
    "notebook": st.none() | st.text(max_size=12) | json_values
                | st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
}


@FAST
@given(st.fixed_dictionaries({}, optional={f: field_values.get(f, json_values) for f in FIELDS}))
def test_hostile_field_values_raise_only_bad_result(obj):
    o = _read_or_refuse(json.dumps(obj).encode())
    if o is None:
        return
    # What an accepted answer must say about the fields given.
    assert o.fatal is (obj.get("fatal") is True)
    for f in ("worker", "problem", "error", "refused"):
        assert isinstance(obj.get(f, ""), str), f  # a non-string should have been refused
    checks = obj.get("checks", {})
    assert isinstance(checks, dict) and set(o.checks) == set(checks)
    for gid, items in checks.items():
        assert isinstance(items, list)
        objects = [i for i in items if isinstance(i, dict)]
        assert [c.passed for c in o.checks[gid]] == [i.get("passed") is True for i in objects]
    assert set(o.export_errors) == set(obj.get("export_errors", {}))
    if "seconds" in obj:
        assert _is_number(obj["seconds"])
    assert all(_is_number(v) for v in obj.get("timings", {}).values())


# --------------------------------------------------------------------------------------------
# pack / unpack helpers
# --------------------------------------------------------------------------------------------

def _regular_files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            if stat.S_ISREG(p.lstat().st_mode):
                out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def _tree(root: Path) -> tuple[dict[str, bytes], set[str]]:
    """(regular files, folders) below root; fails on anything else (links, devices, FIFOs)."""
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            mode = p.lstat().st_mode
            rel = p.relative_to(root).as_posix()
            if stat.S_ISDIR(mode):
                dirs.add(rel)
            elif stat.S_ISREG(mode):
                files[rel] = p.read_bytes()
            else:
                raise AssertionError(f"not a regular file or folder in {root}: {rel} "
                                     f"({stat.filemode(mode)})")
    return files, dirs


def _parents(paths) -> set[str]:
    out = set()
    for p in paths:
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


def _tar(members, fmt=tarfile.PAX_FORMAT) -> bytes:
    """A tar of (TarInfo, data or None) pairs, checked to hold the names as crafted."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    raw = buf.getvalue()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        assert [m.name for m in tf.getmembers()] == [i.name.rstrip("/") if i.isdir() else i.name
                                                     for i, _ in members]
    return raw


def _info(name, kind=tarfile.REGTYPE, linkname="", **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


class Scene:
    """tmp/ with dst (not yet there), an empty sibling outside/ and victim/secret.txt."""

    def __init__(self, root: Path):
        self.root = root
        self.dst = root / "dst"
        self.outside = root / "outside"
        self.outside.mkdir()
        self.victim = root / "victim"
        self.victim.mkdir()
        self.secret = self.victim / "secret.txt"
        self.secret.write_bytes(b"secret")
        self.above = root.parent / f"escaped-{root.name}.txt"

    def assert_untouched(self):
        assert sorted(os.listdir(self.root)) in (["dst", "outside", "victim"],
                                                 ["outside", "victim"]), os.listdir(self.root)
        assert os.listdir(self.outside) == []
        assert os.listdir(self.victim) == ["secret.txt"]
        assert not self.secret.is_symlink() and self.secret.read_bytes() == b"secret"
        assert self.secret.stat().st_nlink == 1
        assert not os.path.lexists(self.above)
        if os.path.lexists(self.dst):
            assert self.dst.is_dir() and not self.dst.is_symlink()
            _tree(self.dst)  # only regular files and folders inside


@pytest.fixture
def scene(tmp_path):
    s = Scene(tmp_path)
    yield s
    if os.path.lexists(s.above):
        os.unlink(s.above)


# --------------------------------------------------------------------------------------------
# pack / unpack: round trips
# --------------------------------------------------------------------------------------------

def _build_submission(folder: Path, elsewhere: Path) -> dict[str, bytes]:
    files = {
        "top.txt": b"hello\n",
        "empty.bin": b"",
        "bin.dat": bytes(range(256)) * 40,
        ".hidden": b"h",
        "-dash": b"-",
        "name with spaces \u00e9.txt": "ünï".encode(),
        "sub/inner.py": b"print('x')\n",
        "sub/deeper/x/y/z.txt": b"z" * 513,
        "L" * 150 + ".txt": b"long name",
        "d" * 90 + "/" + "e" * 90 + "/" + "f" * 90 + ".txt": b"long path",
    }
    for rel, data in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    os.link(folder / "top.txt", folder / "sub" / "hard.txt")  # a second name: a regular file
    files["sub/hard.txt"] = files["top.txt"]
    elsewhere.mkdir()
    (elsewhere / "big.bin").write_bytes(b"B" * 5000)
    (elsewhere / "sub").mkdir()
    (elsewhere / "sub" / "stolen.txt").write_bytes(b"not in the submission")
    (folder / "link_file").symlink_to("top.txt")
    (folder / "link_dir").symlink_to("sub")
    (folder / "link_out").symlink_to(elsewhere / "big.bin")
    (folder / "link_out_dir").symlink_to(elsewhere)
    (folder / "up").symlink_to("..")
    (folder / "dangling").symlink_to("nowhere")
    (folder / "empty_dir").mkdir()
    (folder / "e1" / "e2" / "e3").mkdir(parents=True)
    (folder / "onlylink").mkdir()
    (folder / "onlylink" / "l").symlink_to("../top.txt")
    return files


def test_pack_unpack_round_trip(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    files = _build_submission(folder, tmp_path / "elsewhere")
    data = pack(folder)
    assert isinstance(data, bytes)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    assert all(m.isreg() for m in members), [(m.name, m.type) for m in members]
    assert sorted(m.name for m in members) == sorted(files)
    dst = tmp_path / "out"
    assert unpack(data, dst) is None
    got_files, got_dirs = _tree(dst)
    assert got_files == files
    assert got_dirs == _parents(files)  # empty folders and link-only folders left out


def test_pack_within_limit_exactly(tmp_path):
    folder = tmp_path / "s"
    (folder / "a").mkdir(parents=True)
    (folder / "x.bin").write_bytes(b"x" * 60)
    (folder / "a" / "y.bin").write_bytes(b"y" * 50)
    data = pack(folder, limit=110)
    unpack(data, tmp_path / "out", limit=110)
    assert _tree(tmp_path / "out")[0] == {"x.bin": b"x" * 60, "a/y.bin": b"y" * 50}


def test_pack_over_limit_is_refused(tmp_path):
    folder = tmp_path / "s"
    (folder / "a").mkdir(parents=True)
    (folder / "x.bin").write_bytes(b"x" * 60)
    (folder / "a" / "y.bin").write_bytes(b"y" * 50)
    with pytest.raises(SubmissionError):
        pack(folder, limit=109)


def test_pack_does_not_count_symlinked_files(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "small.txt").write_bytes(b"s" * 10)
    (tmp_path / "huge.bin").write_bytes(b"h" * 10_000)
    (folder / "huge").symlink_to(tmp_path / "huge.bin")
    data = pack(folder, limit=100)
    unpack(data, tmp_path / "out", limit=100)
    assert _tree(tmp_path / "out")[0] == {"small.txt": b"s" * 10}


def test_default_limits_are_max_submission_bytes():
    assert inspect.signature(pack).parameters["limit"].default == MAX_SUBMISSION_BYTES
    assert inspect.signature(unpack).parameters["limit"].default == MAX_SUBMISSION_BYTES


def test_empty_folder_round_trips_to_empty_dst(tmp_path):
    folder = tmp_path / "s"
    (folder / "only" / "empty" / "dirs").mkdir(parents=True)
    data = pack(folder)
    unpack(data, tmp_path / "out")
    assert (tmp_path / "out").is_dir()
    assert _tree(tmp_path / "out") == ({}, set())


def test_pack_leaves_out_fifos_without_blocking(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"a")
    fifo = folder / "pipe"
    os.mkfifo(fifo)
    result: dict = {}

    def run():
        try:
            result["data"] = pack(folder)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            result["exc"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    hung = worker.is_alive()
    if hung:  # unblock a reader waiting on the FIFO
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        worker.join(5)
    assert not hung, "pack blocked reading a FIFO"
    assert "exc" not in result, result.get("exc")
    with tarfile.open(fileobj=io.BytesIO(result["data"])) as tf:
        assert [m.name for m in tf.getmembers()] == ["a.txt"]


def test_non_utf8_file_name_is_packed_or_refused(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9-\xff.txt")
    (folder / name).write_bytes(b"latin-1 name")
    (folder / "ok.txt").write_bytes(b"ok")
    try:
        data = pack(folder)
    except SubmissionError:
        return
    unpack(data, tmp_path / "out")
    assert _tree(tmp_path / "out")[0] == {name: b"latin-1 name", "ok.txt": b"ok"}


_component = st.text(alphabet="abcXYZ019_-. é", min_size=1, max_size=12).filter(
    lambda s: s not in (".", ".."))


def _no_prefix_clash(paths) -> bool:
    keys = {"/".join(p) for p in paths}
    return not any("/".join(p[:i]) in keys for p in paths for i in range(1, len(p)))


@SLOW
@given(st.dictionaries(st.lists(_component, min_size=1, max_size=4).map(tuple),
                       st.binary(max_size=200), max_size=8).filter(_no_prefix_clash))
def test_pack_unpack_round_trip_property(spec):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "s")
        folder.mkdir()
        for parts, data in spec.items():
            p = folder.joinpath(*parts)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        expected = {"/".join(parts): data for parts, data in spec.items()}
        packed = pack(folder)
        dst = Path(tmp, "out")
        unpack(packed, dst)
        files, dirs = _tree(dst)
        assert files == expected
        assert dirs == _parents(expected)


# --------------------------------------------------------------------------------------------
# unpack: crafted archives
# --------------------------------------------------------------------------------------------

def _crafted(s: Scene) -> dict:
    out, victim = str(s.outside), str(s.secret)
    f = lambda name, data=b"pwned": (_info(name), data)  # noqa: E731
    return {
        "symlink-out": [(_info("link", tarfile.SYMTYPE, out), None), f("link/pwn.txt")],
        "symlink-to-secret-then-write": [(_info("s", tarfile.SYMTYPE, victim), None),
                                         f("s")],
        "symlink-relative-out": [(_info("rel", tarfile.SYMTYPE, "../outside"), None),
                                 f("rel/pwn.txt")],
        "symlink-inside": [f("a.txt", b"a"), (_info("l", tarfile.SYMTYPE, "a.txt"), None)],
        "symlink-dangling": [(_info("l", tarfile.SYMTYPE, str(s.outside / "made.txt")), None)],
        "hardlink-to-secret-then-write": [(_info("h", tarfile.LNKTYPE, victim), None),
                                          f("h")],
        "hardlink-relative": [(_info("h", tarfile.LNKTYPE, "../victim/secret.txt"), None),
                              f("h")],
        "hardlink-inside": [f("a.txt", b"a"), (_info("b.txt", tarfile.LNKTYPE, "a.txt"), None)],
        "char-device": [(_info("null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)],
        "block-device": [(_info("disk", tarfile.BLKTYPE, devmajor=7, devminor=0), None)],
        "fifo": [(_info("pipe", tarfile.FIFOTYPE), None)],
        "directory": [(_info("sub", tarfile.DIRTYPE, mode=0o755), None), f("sub/a.txt", b"a")],
        "directory-only": [(_info("sub", tarfile.DIRTYPE, mode=0o755), None)],
        "absolute": [f(str(s.outside / "abs.txt"))],
        "absolute-above": [f(str(s.above))],
        "dotdot": [f("../outside/x.txt")],
        "dotdot-above": [f("../" + s.above.name)],
        "dotdot-nested": [f("a/../../outside/x.txt")],
        "dotdot-dot": [f("./../outside/x.txt")],
        "dotdot-deep": [f("a/b/../../../outside/x.txt")],
        "dotdot-victim-overwrite": [f("../victim/secret.txt")],
        "pax-path-escape": [(_info("innocent.txt"), b"pwned")],  # path set below
        "gnu-longname-escape": [f("../outside/" + "n" * 150 + ".txt")],
        "over-limit-total": [f("a.bin", b"a" * 40), f("b.bin", b"b" * 40), f("c.bin", b"c" * 40)],
        "over-limit-single": [f("big.bin", b"x" * 101)],
    }


CRAFTED = ["symlink-out", "symlink-to-secret-then-write", "symlink-relative-out",
           "symlink-inside", "symlink-dangling", "hardlink-to-secret-then-write",
           "hardlink-relative", "hardlink-inside", "char-device", "block-device", "fifo",
           "directory", "directory-only", "absolute", "absolute-above", "dotdot",
           "dotdot-above", "dotdot-nested", "dotdot-dot", "dotdot-deep",
           "dotdot-victim-overwrite", "pax-path-escape", "gnu-longname-escape",
           "over-limit-total", "over-limit-single"]


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_tar_is_refused(scene, case):
    members = _crafted(scene)[case]
    if case == "pax-path-escape":
        members[0][0].pax_headers = {"path": "../outside/pax.txt"}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            info, data = members[0]
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            assert tf.getnames() == ["../outside/pax.txt"]
    else:
        raw = _tar(members, tarfile.GNU_FORMAT if case.startswith("gnu") else tarfile.PAX_FORMAT)
    try:
        unpack(raw, scene.dst, limit=100)
    except SubmissionError:
        refused = True
    else:
        refused = False
    # First: nothing written outside dst (whether or not it was refused).
    scene.assert_untouched()
    for made in (scene.outside / "made.txt", scene.outside / "abs.txt", scene.outside / "pwn.txt",
                 scene.outside / "x.txt", scene.outside / "pax.txt"):
        assert not os.path.lexists(made)
    assert refused, f"unpack accepted {case!r}; dst now holds {_tree(scene.dst)[0].keys()}"


def test_limit_counts_exactly(scene):
    raw = _tar([(_info("a.bin"), b"a" * 60), (_info("b/c.bin"), b"c" * 40)])
    unpack(raw, scene.dst, limit=100)
    assert _tree(scene.dst) == ({"a.bin": b"a" * 60, "b/c.bin": b"c" * 40}, {"b"})
    scene.assert_untouched()


def test_lying_header_size_is_refused(scene):
    info = _info("huge.bin")
    info.size = 2 ** 33 + 5  # base-256 size field; only a few bytes follow
    raw = info.tobuf(tarfile.GNU_FORMAT) + b"x" * 512 + b"\0" * 1024
    with pytest.raises(SubmissionError):
        unpack(raw, scene.dst)
    scene.assert_untouched()


def _truncated_tar() -> bytes:
    raw = _tar([(_info("a.txt"), b"A" * 3000)])
    return raw[:1200]


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


NOT_TARS = {
    "empty": b"",
    "text": b"this is not a tar archive",
    "noise": bytes(range(256)) * 4,
    "one-block-noise": b"\x01" * 512,
    "gzip-of-text": gzip.compress(b"hello, not a tar" * 10),
    "gzip-magic-only": b"\x1f\x8b",
    "gzip-truncated": gzip.compress(b"x" * 5000)[:20],
    "bzip2-magic-only": b"BZh9",
    "xz-magic-only": b"\xfd7zXZ\x00",
    "zip": _zip(),
    "truncated-tar": _truncated_tar(),
    "header-bad-checksum": (lambda r: r[:148] + b"0000000\0" + r[156:])(
        _tar([(_info("a.txt"), b"A")])),
}


@pytest.mark.parametrize("name", sorted(NOT_TARS))
def test_not_a_tar_is_refused(scene, name):
    with pytest.raises(SubmissionError):
        unpack(NOT_TARS[name], scene.dst)
    scene.assert_untouched()


def test_existing_dst_is_refused(scene):
    scene.dst.mkdir()
    raw = _tar([(_info("a.txt"), b"a")])
    with pytest.raises(SubmissionError):
        unpack(raw, scene.dst)
    assert os.listdir(scene.dst) == []
    scene.assert_untouched()


def test_existing_file_dst_is_refused(scene):
    scene.dst.write_bytes(b"keep")
    with pytest.raises(SubmissionError):
        unpack(_tar([(_info("a.txt"), b"a")]), scene.dst)
    assert scene.dst.read_bytes() == b"keep"


def test_dst_symlink_to_outside_is_refused(scene):
    scene.dst.symlink_to(scene.outside)
    with pytest.raises(SubmissionError):
        unpack(_tar([(_info("a.txt"), b"pwned")]), scene.dst)
    assert os.listdir(scene.outside) == []
    assert scene.dst.is_symlink()


def test_dangling_dst_symlink_is_refused(scene):
    scene.dst.symlink_to(scene.outside / "made")
    with pytest.raises(SubmissionError):
        unpack(_tar([(_info("a.txt"), b"pwned")]), scene.dst)
    assert os.listdir(scene.outside) == []


# Archives that cannot be written as they stand: unpack may refuse them, or write them, but
# never raise anything but SubmissionError, and never write outside dst.
AWKWARD = {
    "file-then-child": [("a", b"1"), ("a/b.txt", b"2")],
    "child-then-file": [("a/b.txt", b"2"), ("a", b"1")],
    "dot-name": [(".", b"1")],
    "empty-name": [("", b"1")],
    "trailing-slash": [("x/", b"1")],
    "name-too-long": [("x" * 300, b"1")],
    "path-too-long": [("/".join(["d" * 200] * 30), b"1")],
    "duplicate": [("a.txt", b"1"), ("a.txt", b"2")],
    "dot-slash": [("./a.txt", b"1")],
    "inner-dotdot": [("a/../b.txt", b"1")],
    "double-slash": [("a//b.txt", b"1")],
    "backslash": [("..\\..\\x.txt", b"1")],
}


@pytest.mark.parametrize("case", sorted(AWKWARD))
def test_awkward_names_raise_only_submission_error(scene, case):
    members = [(_info(n), d) for n, d in AWKWARD[case]]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    try:
        unpack(buf.getvalue(), scene.dst)
    except SubmissionError:
        pass
    else:
        files, _ = _tree(scene.dst)
        assert files, "unpack reported success but wrote nothing"
    scene.assert_untouched()


# --------------------------------------------------------------------------------------------
# unpack: property tests
# --------------------------------------------------------------------------------------------

def _run_unpack(data: bytes, limit: int | None = None):
    """unpack into a fresh scene; only SubmissionError may escape, nothing may leave dst."""
    with tempfile.TemporaryDirectory() as tmp:
        s = Scene(Path(tmp))
        try:
            try:
                if limit is None:
                    unpack(data, s.dst)
                else:
                    unpack(data, s.dst, limit=limit)
            except SubmissionError:
                ok = False
            else:
                ok = True
                assert s.dst.is_dir()
            s.assert_untouched()
            return ok
        finally:
            if os.path.lexists(s.above):
                os.unlink(s.above)


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_submission_error(data):
    _run_unpack(data)


KINDS = [tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE,
         tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CONTTYPE, b"Z", b"V", b"M"]
REFUSED_KINDS = {tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                 tarfile.DIRTYPE, tarfile.FIFOTYPE}
_name_part = st.sampled_from(["a", "b", "..", ".", "outside", "victim", "secret.txt", "x.txt"])
_names = st.lists(_name_part, min_size=1, max_size=4).map("/".join)
_members = st.tuples(st.sampled_from(KINDS), _names,
                     st.sampled_from(["", "a", "..", "../outside", "../victim/secret.txt",
                                      "/", "b/../.."]),
                     st.binary(max_size=40))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_members, min_size=1, max_size=5), st.sampled_from([None, 64]),
       st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
       st.none() | st.integers(0, 4000))
def test_crafted_member_lists_raise_only_submission_error(members, limit, fmt, cut):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for kind, name, linkname, data in members:
            info = _info(name, kind, linkname)
            if kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    raw = buf.getvalue()
    if cut is not None:
        raw = raw[:cut]
    ok = _run_unpack(raw, limit)
    if ok and cut is None:
        assert not any(kind in REFUSED_KINDS for kind, *_ in members), members
        escaping = [name for _, name, *_ in members
                    if posixpath.normpath(name or ".").split("/")[0] == ".."]
        assert not escaping, members


@FAST
@given(st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), min_size=1, max_size=6),
       st.booleans())
def test_mutated_headers_raise_only_submission_error(edits, fix_checksum):
    raw = bytearray(_tar([(_info("a.txt"), b"A" * 700), (_info("d/b.txt"), b"B" * 10)],
                         tarfile.USTAR_FORMAT))
    for pos, value in edits:
        raw[pos] = value
    if fix_checksum:
        header = raw[:512]
        header[148:156] = b" " * 8
        raw[148:156] = b"%06o\0 " % sum(header)
    _run_unpack(bytes(raw), limit=1000)
