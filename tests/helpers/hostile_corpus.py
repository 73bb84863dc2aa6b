"""The crafted safetensors files of tests/test_checkpoint_hostile.py, as data.

Byte builders first (a length prefix, a padded header, a whole file), then one constructor per
kind of case, then the corpus: small sections, each a function returning its cases, registered
in SECTIONS (in corpus order) by the `section` decorator under the list they belong to:

* "hostile": every file must be refused with CheckpointError naming the file's path;
* "valid": standard files the spec allows, which must load with the right names, shapes, dtypes
  and bytes;
* "ambiguous": files the spec leaves open, which must load or raise CheckpointError.

`build_corpus()` runs the sections in order and returns the three lists.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

MB_CAP_OVER = 100 * 2**20 + 1
"""A header length over the 100 MB header cap, whichever "MB" a loader means."""

DEEP = 200_000
"""The nesting depth of the recursion attacks."""


class Case(NamedTuple):
    """A hostile or ambiguous file: its bytes and the names to try with `names=[name]`."""

    id: str
    data: bytes
    attack: str
    names: tuple[str, ...] = ()  # names to try with load_tensors(path, names=[name])


class ValidCase(NamedTuple):
    """A valid file and what it must load as."""

    id: str
    data: bytes
    attack: str
    expected: dict  # name -> (dtype name, shape, raw little-endian C-order bytes)
    metadata: dict | None = None  # expected metadata (None: file has no __metadata__)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def u64(n: int) -> bytes:
    """`n` as 8 little-endian bytes: the length prefix of a safetensors file."""
    return struct.pack("<Q", n)


def pad8(header: bytes) -> bytes:
    """Trailing-pad a header with 0x20 to a multiple of 8, as the safetensors library does."""
    return header + b" " * (-len(header) % 8)


def raw(header: bytes, data: bytes = b"", *, pad: bool = True, n: int | None = None) -> bytes:
    """A file from header bytes; ``n`` overrides the length prefix."""
    h = pad8(header) if pad else header
    return u64(len(h) if n is None else n) + h + data


def js(obj) -> bytes:
    """`obj` as compact UTF-8 JSON, as the safetensors library writes a header."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ent(dtype, shape, begin, end) -> dict:
    """A header's entry for one tensor."""
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def f32(*values) -> bytes:
    """`values` as little-endian F32 bytes."""
    return np.array(values, dtype="<f4").tobytes()


ONE_F32 = f32(1.5)
"""The data of a one-element F32 tensor."""

A_OK = ent("F32", [1], 0, 4)
"""A well-formed one-element F32 entry over the first 4 bytes."""

ONE = {"a": A_OK}
"""A well-formed header for ONE_F32."""

ENTRY = js(A_OK)
"""A_OK as header bytes, for headers written by hand."""

DEEP_LIST = b"[" * DEEP + b"]" * DEEP
"""DEEP nested JSON lists."""

CLASSIC = {
    "BOOL": ("bool", "?"), "U8": ("uint8", "<u1"), "I8": ("int8", "<i1"),
    "I16": ("int16", "<i2"), "U16": ("uint16", "<u2"), "F16": ("float16", "<f2"),
    "I32": ("int32", "<i4"), "U32": ("uint32", "<u4"), "F32": ("float32", "<f4"),
    "F64": ("float64", "<f8"), "I64": ("int64", "<i8"), "U64": ("uint64", "<u8"),
}
"""dtype code -> (NumPy dtype name of the result, NumPy dtype that makes the test bytes)."""

EXOTIC = {"BF16": ("bfloat16", 2), "F8_E5M2": ("float8_e5m2", 1),
          "F8_E4M3": ("float8_e4m3fn", 1)}
"""ml_dtypes types, compared by name and raw bytes: code -> (dtype name, itemsize)."""


def pack(tensors, metadata=None, *, header_order=None, pad=True, indent=None):
    """A standard file from [(name, code, shape, raw bytes)], laid out contiguously in list order.

    Returns (file bytes, expected) where expected maps name -> (dtype name, shape, raw bytes).
    """
    header, expected, offset, buf = {}, {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    entries = {}
    for name, code, shape, data in tensors:
        entries[name] = ent(code, list(shape), offset, offset + len(data))
        offset += len(data)
        buf += data
        dname = CLASSIC[code][0] if code in CLASSIC else EXOTIC[code][0]
        expected[name] = (dname, tuple(shape), data)
    for name in header_order or entries:
        header[name] = entries[name]
    if indent is None:
        hb = js(header)
    else:
        hb = json.dumps(header, indent=indent, ensure_ascii=False).encode("utf-8")
    return raw(hb, buf, pad=pad), expected


def arr_bytes(code: str, values, shape) -> bytes:
    """`values` as the bytes of a `code` tensor of `shape`, in C order."""
    return np.array(values, dtype=CLASSIC[code][1]).reshape(shape).tobytes()


# --------------------------------------------------------------------------------------------
# One constructor per kind of case
# --------------------------------------------------------------------------------------------

def tensor_names(header: dict, names) -> tuple:
    """`names` if given, else the header's tensor names (``__metadata__`` left out)."""
    return tuple(k for k in header if k != "__metadata__") if names is None else names


def hostile(id_, attack, header, data=b"", *, names=None, pad=True, n=None) -> Case:
    """A hostile case; ``header`` is a dict (serialised compactly) or raw header bytes."""
    if isinstance(header, dict):
        names = tensor_names(header, names)
        header = js(header)
    return Case(id_, raw(header, data, pad=pad, n=n), attack, tuple(names or ("a",)))


def hostile_file(id_, attack, file_bytes, names=("a",)) -> Case:
    """A hostile case given as the whole file's bytes."""
    return Case(id_, file_bytes, attack, tuple(names))


def bad_shape(id_, attack, shape, dtype="F32", offsets=(0, 4), data=ONE_F32) -> Case:
    """A hostile case "shape_<id_>": one tensor "a" whose entry has this `shape`."""
    return hostile(f"shape_{id_}", attack, {"a": {"dtype": dtype, "shape": shape,
                                                  "data_offsets": list(offsets)}}, data)


def bad_offsets(id_, attack, offsets, shape=(1,), dtype="F32", data=ONE_F32) -> Case:
    """A hostile case "offsets_<id_>": one tensor "a" whose entry has these data_offsets."""
    return hostile(f"offsets_{id_}", attack, {"a": {"dtype": dtype, "shape": list(shape),
                                                    "data_offsets": offsets}}, data)


def valid(id_, attack, tensors, metadata=None, **kw) -> ValidCase:
    """A valid case written by `pack` from [(name, code, shape, raw bytes)]."""
    data, expected = pack(tensors, metadata, **kw)
    return ValidCase(id_, data, attack, expected, metadata)


def valid_raw(id_, attack, header: bytes, data: bytes, expected, metadata=None,
              pad=True) -> ValidCase:
    """A valid case from a header written by hand, and what it must load as."""
    return ValidCase(id_, raw(header, data, pad=pad), attack, expected, metadata)


def ambiguous(id_, attack, header, data=b"", *, names=None, pad=True) -> Case:
    """An ambiguous case; ``header`` is a dict (serialised compactly) or raw header bytes."""
    if isinstance(header, dict):
        names = tensor_names(header, names)
        header = js(header)
    return Case(id_, raw(header, data, pad=pad), attack, tuple(names or ()))


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

SECTIONS: list[tuple[str, Callable[[], list]]] = []
"""(kind, section) in corpus order: kind is "hostile", "valid" or "ambiguous"."""


def section(kind: str):
    """Register the decorated function, which returns cases of `kind`, as the next section."""
    assert kind in ("hostile", "valid", "ambiguous"), kind

    def register(build: Callable[[], list]) -> Callable[[], list]:
        SECTIONS.append((kind, build))
        return build
    return register


def build_corpus() -> tuple[list[Case], list[ValidCase], list[Case]]:
    """Crafted files: (HOSTILE, VALID, AMBIGUOUS), each section's cases in registry order."""
    corpus: dict[str, list] = {"hostile": [], "valid": [], "ambiguous": []}
    for kind, build in SECTIONS:
        corpus[kind] += build()
    return corpus["hostile"], corpus["valid"], corpus["ambiguous"]


# --------------------------------------------------------------------------------------------
# HOSTILE
# --------------------------------------------------------------------------------------------

@section("hostile")
def framing() -> list[Case]:
    """The 8-byte length prefix."""
    return [
        hostile_file("empty_file", "zero-length file", b""),
        hostile_file("one_byte", "file shorter than the length prefix", b"\x08"),
        hostile_file("seven_bytes", "length prefix cut at 7 bytes", u64(2)[:7]),
        hostile_file("prefix_only_len0", "8 bytes, header length 0, nothing else", u64(0)),
        hostile_file("header_len_zero_with_body", "header length 0 followed by a JSON header",
                     u64(0) + pad8(js(ONE)) + ONE_F32),
        hostile_file("header_len_beyond_file", "header length larger than the file",
                     u64(100) + b"{}"),
        hostile_file("header_len_u64_max", "header length 2**64-1 (OverflowError in read/seek)",
                     u64(2**64 - 1) + b"{}      "),
        hostile_file("header_len_2_63", "header length 2**63 (negative as int64)",
                     u64(2**63) + b"{}      "),
        hostile_file("header_len_2_40",
                     "header length 2**40: f.read(N) would try to allocate 1 TiB",
                     u64(2**40) + b"{}      "),
        hostile_file("header_len_over_cap_small_file",
                     "header length over the 100 MB cap, tiny file",
                     u64(MB_CAP_OVER) + b"{}      "),
        hostile("header_len_one_short",
                "length prefix one byte short: JSON loses its closing brace", js(ONE), ONE_F32,
                pad=False, n=len(js(ONE)) - 1),
        hostile("header_len_points_mid_json", "length prefix cuts the JSON in the middle", js(ONE),
                ONE_F32, pad=False, n=10),
        hostile("header_swallows_data",
                "length prefix covers the data too (data bytes are spaces, so "
                "the header still parses); the tensor then lies beyond the empty buffer",
                pad8(js(ONE)), b"    ", pad=False, n=len(pad8(js(ONE))) + 4),
        hostile("header_len_exact_no_data",
                "header runs to the end of file but a tensor needs 4 bytes", js(ONE)),
    ]


@section("hostile")
def header_start() -> list[Case]:
    """The header must begin with '{' and be a JSON object in UTF-8."""
    return [
        hostile("leading_space", "header begins with a space, not '{'", b" " + js(ONE), ONE_F32),
        hostile("leading_newline", "header begins with a newline", b"\n" + js(ONE), ONE_F32),
        hostile("utf8_bom", "header begins with a UTF-8 BOM (json.loads(bytes) would accept it)",
                b"\xef\xbb\xbf" + js(ONE), ONE_F32),
        hostile("json_list", "header is a JSON list", b"[]"),
        hostile("json_list_of_tensor", "header is a list holding a tensor entry", js([A_OK]),
                ONE_F32),
        hostile("json_number", "header is a JSON number", b"1"),
        hostile("json_string", "header is a JSON string", b'"{}"'),
        hostile("json_null", "header is JSON null", b"null"),
        hostile("json_true", "header is JSON true", b"true"),
        hostile("utf16le_header", "header in UTF-16-LE: starts with '{' but holds NULs "
                "(json.loads(bytes) auto-detects UTF-16 and would parse it)",
                json.dumps(ONE).encode("utf-16-le"), ONE_F32),
        hostile("utf32le_header", "header in UTF-32-LE", json.dumps(ONE).encode("utf-32-le"),
                ONE_F32),
    ]


@section("hostile")
def encoding() -> list[Case]:
    """Header bytes that are not valid UTF-8."""
    return [
        hostile("invalid_utf8_name", "invalid UTF-8 bytes in a tensor name",
                b'{"\xff\xfe":' + ENTRY + b"}", ONE_F32),
        hostile("overlong_utf8", "overlong UTF-8 encoding of '/' in a name",
                b'{"a\xc0\xaf":' + ENTRY + b"}", ONE_F32),
        hostile("utf8_encoded_surrogate", "UTF-8-encoded surrogate (ED A0 80) in a name",
                b'{"a\xed\xa0\x80":' + ENTRY + b"}", ONE_F32),
        hostile("truncated_utf8_in_metadata", "metadata value ends inside a multi-byte sequence",
                b'{"__metadata__":{"k":"\xc3"},"a":' + ENTRY + b"}", ONE_F32),
        hostile("latin1_header", "header encoded as Latin-1 (0xE9 for e-acute)",
                '{"caf\u00e9":'.encode("latin-1") + ENTRY + b"}", ONE_F32),
    ]


@section("hostile")
def json_syntax() -> list[Case]:
    """Headers that are not strict JSON, or not only JSON and 0x20 padding."""
    return [
        hostile("not_json", "header is '{' but not JSON", b"{not json}"),
        hostile("truncated_json", "JSON cut mid-object", b'{"a":{"dtype":"F32"'),
        hostile("trailing_comma", "trailing comma", js(ONE)[:-1] + b",}", ONE_F32),
        hostile("single_quotes", "single-quoted keys (Python literal, not JSON)",
                b"{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", ONE_F32),
        hostile("json_comment", "a /* comment */ inside the header", b"{/* x */" + js(ONE)[1:],
                ONE_F32),
        hostile("two_objects", "two JSON objects back to back", js(ONE) + b"{}", ONE_F32),
        hostile("trailing_garbage", "non-whitespace after the JSON", js(ONE) + b"x", ONE_F32),
        hostile("nul_padding", "header padded with NUL bytes instead of spaces",
                js(ONE) + b"\x00" * 7, ONE_F32, pad=False),
        hostile("nul_after_brace", "a NUL byte right after '{'", b"{\x00" + js(ONE)[1:], ONE_F32),
        hostile("raw_nul_in_name", "unescaped NUL inside a JSON string",
                b'{"a\x00":' + ENTRY + b"}", ONE_F32),
        hostile("raw_tab_in_metadata", "unescaped control character inside a metadata string",
                b'{"__metadata__":{"k":"a\tb"},"a":' + ENTRY + b"}", ONE_F32),
        hostile("formfeed_padding",
                "padded with form feeds (str.strip() removes them; JSON does not)",
                js(ONE) + b"\x0c" * 3, ONE_F32, pad=False),
        hostile("vertical_tab_padding", "padded with vertical tabs", js(ONE) + b"\x0b" * 3,
                ONE_F32, pad=False),
        hostile("nbsp_padding", "padded with U+00A0 (str.strip() removes it; JSON does not)",
                js(ONE) + "\u00a0".encode() * 2, ONE_F32, pad=False),
        hostile("nan_literal_in_shape", "NaN literal (Python's json accepts it) as a dimension",
                b'{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', ONE_F32),
        hostile("infinity_in_offsets", "Infinity literal as an offset (int(inf) -> OverflowError)",
                b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,Infinity]}}', ONE_F32),
        hostile("neg_infinity_in_offsets", "-Infinity literal as an offset",
                b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[-Infinity,4]}}', ONE_F32),
        hostile("nan_metadata_value", "NaN literal as a metadata value",
                b'{"__metadata__":{"k":NaN},"a":' + ENTRY + b"}", ONE_F32),
        hostile("huge_digits_in_shape",
                "a 5000-digit dimension (Python's int() limit -> ValueError)",
                b'{"a":{"dtype":"F32","shape":[1' + b"0" * 5000 + b'],"data_offsets":[0,4]}}',
                ONE_F32),
        hostile("huge_digits_in_offsets", "a 5000-digit offset",
                b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4' + b"0" * 5000 + b"]}}",
                ONE_F32),
        hostile("shape_1e400", "1e400 as a dimension (parses to float inf)",
                b'{"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}', ONE_F32),
        hostile("offsets_1e400", "1e400 as an offset",
                b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1e400]}}', ONE_F32),
    ]


@section("hostile")
def deep_nesting() -> list[Case]:
    """DEEP levels of nesting, for a RecursionError in the JSON reader."""
    return [
        hostile("deep_list_as_tensor", "200,000 nested lists as a tensor entry",
                b'{"a":' + DEEP_LIST + b"}"),
        hostile("deep_dicts", "200,000 nested objects", b'{"a":' * DEEP + b"{}" + b"}" * DEEP),
        hostile("deep_in_shape", "200,000 nested lists inside shape",
                b'{"a":{"dtype":"F32","shape":' + DEEP_LIST + b',"data_offsets":[0,4]}}',
                ONE_F32),
        hostile("deep_in_data_offsets", "200,000 nested lists inside data_offsets",
                b'{"a":{"dtype":"F32","shape":[1],"data_offsets":' + DEEP_LIST + b"}}", ONE_F32),
        hostile("deep_in_metadata", "200,000 nested lists as a metadata value",
                b'{"__metadata__":{"k":' + DEEP_LIST + b'},"a":' + ENTRY + b"}", ONE_F32),
        hostile("deep_dicts_in_metadata", "200,000 nested objects inside __metadata__",
                b'{"__metadata__":' + b'{"k":' * DEEP + b'"v"' + b"}" * DEEP + b',"a":' + ENTRY
                + b"}", ONE_F32),
        hostile("deep_unclosed", "200,000 '[' never closed", b'{"a":' + b"[" * DEEP),
    ]


@section("hostile")
def duplicate_keys() -> list[Case]:
    """A key twice in one JSON object: tensor names, __metadata__, an entry's fields."""
    return [
        hostile("dup_tensor_same_offsets", "the same tensor name twice, same entry",
                b'{"a":' + ENTRY + b',"a":' + ENTRY + b"}", ONE_F32),
        hostile("dup_tensor_diff_offsets", "the same tensor name twice, covering both halves",
                b'{"a":' + ENTRY + b',"a":' + js(ent("F32", [1], 4, 8)) + b"}", f32(1, 2)),
        hostile("dup_tensor_diff_dtype", "the same name twice with different dtypes, same size",
                b'{"a":' + ENTRY + b',"a":' + js(ent("I32", [1], 0, 4)) + b"}", ONE_F32),
        hostile("dup_tensor_escaped", 'duplicate name spelled "a" and "\\u0061"',
                b'{"a":' + ENTRY + b',"\\u0061":' + ENTRY + b"}", ONE_F32),
        hostile("dup_metadata", "__metadata__ twice",
                b'{"__metadata__":{"k":"1"},"__metadata__":{"k":"2"},"a":' + ENTRY + b"}",
                ONE_F32),
        hostile("dup_key_inside_metadata", "the same key twice inside __metadata__",
                b'{"__metadata__":{"k":"1","k":"2"},"a":' + ENTRY + b"}", ONE_F32),
        hostile("dup_field_dtype", "dtype twice in one entry, different values",
                b'{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', ONE_F32),
        hostile("dup_field_shape", "shape twice in one entry",
                b'{"a":{"dtype":"F32","shape":[2],"shape":[1],"data_offsets":[0,4]}}', ONE_F32),
        hostile("dup_field_offsets", "data_offsets twice in one entry",
                b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8],"data_offsets":[0,4]}}',
                ONE_F32),
    ]


@section("hostile")
def metadata_values_not_strings() -> list[Case]:
    """A __metadata__ value of another JSON type than string."""
    return [hostile(f"metadata_value_{tag}", f"metadata value of JSON type {tag} (must be a string)",
                    {"__metadata__": {"k": value}, "a": A_OK}, ONE_F32)
            for tag, value in [("int", 1), ("float", 1.5), ("null", None), ("bool", True),
                               ("dict", {}), ("list", ["v"]), ("nested_dict", {"x": "y"})]]


@section("hostile")
def metadata_not_a_map() -> list[Case]:
    """A __metadata__ that is not a JSON object."""
    return [hostile(f"metadata_not_dict_{tag}", f"__metadata__ is a {tag}, not a map",
                    {"__metadata__": value, "a": A_OK}, ONE_F32)
            for tag, value in [("string", "k=v"), ("list", ["k", "v"]), ("pairs", [["k", "v"]]),
                               ("number", 0), ("bool", False)]]


@section("hostile")
def metadata_keys() -> list[Case]:
    """__metadata__ with a bad key, in the place of a tensor, or spelled otherwise."""
    return [
        hostile("metadata_numeric_key", "unquoted numeric key in __metadata__ (not JSON)",
                b'{"__metadata__":{1:"x"},"a":' + ENTRY + b"}", ONE_F32),
        hostile("metadata_is_tensor_entry", "__metadata__ shaped like a tensor entry",
                {"__metadata__": A_OK}, ONE_F32, names=("a",)),
        hostile("metadata_uppercase",
                "'__METADATA__' is not the special key: it is a bad tensor entry",
                {"__METADATA__": {"k": "v"}, "a": A_OK}, ONE_F32),
    ]


@section("hostile")
def dtypes() -> list[Case]:
    """A dtype that is not a safetensors dtype string."""
    return [hostile(f"dtype_{tag}", f"dtype {dtype!r} is not a safetensors dtype string",
                    {"a": {"dtype": dtype, "shape": [1], "data_offsets": [0, 4]}}, ONE_F32)
            for tag, dtype in [("F128", "F128"), ("Q4_0", "Q4_0"), ("lower_f32", "f32"),
                               ("lower_bf16", "bf16"), ("numpy_name", "float32"),
                               ("numpy_code", "<f4"), ("numpy_object", "O"), ("numpy_void", "V4"),
                               ("numpy_bytes", "S4"), ("numpy_datetime", "M8"), ("empty", ""),
                               ("leading_space", " F32"), ("trailing_space", "F32 "),
                               ("trailing_nul", "F32\u0000"), ("int_number", 32),
                               ("null", None), ("list", ["F32"]), ("dict", {"F32": 1}),
                               ("bool", True)]]


@section("hostile")
def entry_fields() -> list[Case]:
    """A tensor entry without one of its fields, or with them misspelled."""
    return [
        hostile("missing_dtype", "entry without dtype",
                {"a": {"shape": [1], "data_offsets": [0, 4]}}, ONE_F32),
        hostile("missing_shape", "entry without shape",
                {"a": {"dtype": "F32", "data_offsets": [0, 4]}}, ONE_F32),
        hostile("missing_offsets", "entry without data_offsets",
                {"a": {"dtype": "F32", "shape": [1]}}, ONE_F32),
        hostile("misspelled_keys", "entry keys in the wrong case",
                {"a": {"DType": "F32", "Shape": [1], "Data_Offsets": [0, 4]}}, ONE_F32),
        hostile("entry_empty", "entry is {}", {"a": {}}, ONE_F32),
    ]


@section("hostile")
def entries_not_maps() -> list[Case]:
    """A tensor entry that is not a JSON object (the first tensor's, then the second's)."""
    return [hostile(f"entry_{tag}", f"tensor entry is a {tag}", {"a": value}, ONE_F32)
            for tag, value in [("string", "F32"), ("list_short", ["F32", [1]]),
                               ("list_misordered", [[1], "F32", [0, 4]]), ("number", 4),
                               ("null", None), ("bool", True)]] + [
        hostile("bad_second_entry", "first tensor fine, second tensor's entry is a string",
                {"a": A_OK, "b": "junk"}, ONE_F32),
    ]


@section("hostile")
def shapes() -> list[Case]:
    """Shapes that are not lists of non-negative integers, or whose product overflows."""
    return [
        bad_shape("neg1", "shape [-1] (reshape(-1) would infer it)", [-1]),
        bad_shape("neg2_neg2", "shape [-2, -2]: product 4 matches the data", [-2, -2], "U8"),
        bad_shape("zero_neg1", "shape [0, -1]: product 0, empty range", [0, -1], offsets=(0, 0),
                  data=b""),
        bad_shape("float", "dimension 1.0 (float, not integer)", [1.0]),
        bad_shape("bool_true", "dimension true (bool is an int subclass in Python)", [True]),
        bad_shape("bool_false_empty", "dimension false with an empty range", [False],
                  offsets=(0, 0), data=b""),
        bad_shape("string_dim", 'dimension "1"', ["1"]),
        bad_shape("null_dim", "dimension null", [None]),
        bad_shape("nested_dim", "dimension [1]", [[1]]),
        bad_shape("string", 'shape "1" (tuple("1") is a 1-tuple of str)', "1"),
        bad_shape("empty_string", 'shape "" (tuple("") == () would make a scalar)', ""),
        bad_shape("empty_dict", "shape {} (tuple({}) == () would make a scalar)", {}),
        bad_shape("null", "shape null", None),
        bad_shape("int", "shape 1, not a list", 1),
        bad_shape("2_63", "dimension 2**63, empty range", [2**63], offsets=(0, 0), data=b""),
        bad_shape("2_64", "dimension 2**64, empty range", [2**64], offsets=(0, 0), data=b""),
        bad_shape("10_30", "dimension 10**30, empty range", [10**30], offsets=(0, 0), data=b""),
        bad_shape("overflow_2_32_sq",
                  "[2**32, 2**32] F32: the int64 product wraps to 0; empty range", [2**32, 2**32],
                  offsets=(0, 0), data=b""),
        bad_shape("overflow_wraps_to_8",
                  "[2**61+1, 8] U8: int64 product wraps to 8, matching 8 bytes", [2**61 + 1, 8],
                  "U8", (0, 8), bytes(range(8))),
        bad_shape("overflow_wraps_to_2", "[3, 6148914691236517206] U8: product wraps to 2",
                  [3, 6148914691236517206], "U8", (0, 2), b"\x01\x02"),
        bad_shape("overflow_wraps_negative", "[2**62, 3] U8: int64 product wraps negative",
                  [2**62, 3], "U8", (0, 0), b""),
        bad_shape("2_32_plus_4_u8", "dimension 2**32+4 over 4 bytes (32-bit wrap would match)",
                  [2**32 + 4], "U8", (0, 4), b"abcd"),
    ]


@section("hostile")
def data_offsets() -> list[Case]:
    """data_offsets that are not two integers within the buffer, in order."""
    start = 0  # absolute offsets: find the fixed point of "8 + padded header length"
    while start != 8 + len(pad8(js({"a": ent("F32", [1], start, start + 4)}))):
        start = 8 + len(pad8(js({"a": ent("F32", [1], start, start + 4)})))
    return [
        bad_offsets("len1", "data_offsets of length 1", [4]),
        bad_offsets("len3", "data_offsets of length 3", [0, 4, 4]),
        bad_offsets("len0", "data_offsets empty", []),
        bad_offsets("negative_begin", "[-4, 0]: size 4 matches, negative begin", [-4, 0]),
        bad_offsets("negative_both", "[-8, -4] over 8 bytes: a Python slice would read bytes 0..4",
                    [-8, -4], data=f32(1, 2)),
        bad_offsets("floats", "[0.0, 4.0]", [0.0, 4.0]),
        bad_offsets("fraction", "[0, 4.5]", [0, 4.5]),
        bad_offsets("strings", '["0", "4"]', ["0", "4"]),
        bad_offsets("nulls", "[null, null]", [None, None]),
        bad_offsets("bools", "[false, true] over a 1-byte U8 (bools are ints in Python)",
                    [False, True], dtype="U8", data=b"\x07"),
        bad_offsets("string_2chars", 'data_offsets "04" (unpacks into two characters)', "04"),
        bad_offsets("dict", 'data_offsets {"0": 0, "1": 4}', {"0": 0, "1": 4}),
        bad_offsets("int", "data_offsets 4", 4),
        bad_offsets("null", "data_offsets null", None),
        bad_offsets("nested", "[[0], [4]]", [[0], [4]]),
        bad_offsets("begin_gt_end", "[4, 0]", [4, 0]),
        bad_offsets("end_beyond_file", "[0, 400] with 4 bytes of data", [0, 400], shape=(100,)),
        bad_offsets("both_beyond_file", "[400, 404] with 4 bytes of data", [400, 404]),
        bad_offsets("claim_2_60", "U8 [2**60] over [0, 2**60]: a 1 EiB claim on a 4-byte buffer",
                    [0, 2**60], shape=(2**60,), dtype="U8"),
        bad_offsets("claim_2_60_f64", "F64 [2**57] over [0, 2**60]", [0, 2**60], shape=(2**57,),
                    dtype="F64"),
        bad_offsets("end_u64_max", "[0, 2**64-1]", [0, 2**64 - 1], shape=(2**64 - 1,), dtype="U8"),
        bad_offsets("end_2_64", "[0, 2**64] (does not fit u64)", [0, 2**64], shape=(0,)),
        bad_offsets("absolute", "offsets counted from the start of the file, not of the buffer",
                    [start, start + 4]),
        bad_offsets("zero_size_past_end", "0-size tensor at [100, 100] on a 4-byte buffer",
                    [100, 100], shape=(0,)),
    ]


@section("hostile")
def layout() -> list[Case]:
    """The buffer: overlaps, holes, trailing bytes, sizes that do not match the shapes."""
    zip_tail = (b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + bytes(16) + b"\x01\x00\x00\x00x" +
                b"PK\x05\x06" + bytes(18))
    pickle_tail = b"\x80\x02cos\ngetcwd\n)R."
    many = {f"t{i:05d}": ent("U8", [1], i, i + 1) for i in range(5000)}
    many["t04999"] = ent("U8", [1], 4997, 4998)  # overlaps t04997; [4999, 5000) is a hole
    return [
        hostile("overlap_partial", "a [0,8] and b [4,12] overlap",
                {"a": ent("U8", [8], 0, 8), "b": ent("U8", [8], 4, 12)}, bytes(12)),
        hostile("alias_same_range", "a and b share [0,4]", {"a": A_OK, "b": A_OK}, ONE_F32),
        hostile("alias_hides_hole",
                "a and b share [0,4], c at [8,12]: sizes sum to the buffer length "
                "and the last end is the buffer end, yet [4,8] is a hole",
                {"a": A_OK, "b": A_OK, "c": ent("F32", [1], 8, 12)}, f32(1, 2, 3)),
        hostile("overlap_contained", "F64 a over [0,8] contains b [0,4] and c [4,8]",
                {"a": ent("F64", [1], 0, 8), "b": A_OK, "c": ent("F32", [1], 4, 8)}, f32(1, 2)),
        hostile("hole_between", "a [0,4], b [8,12]: bytes 4..8 unindexed",
                {"a": A_OK, "b": ent("F32", [1], 8, 12)}, f32(1, 2, 3)),
        hostile("hole_at_start", "only tensor at [4,8]: bytes 0..4 unindexed",
                {"a": ent("F32", [1], 4, 8)}, f32(1, 2)),
        hostile("trailing_byte", "one unindexed byte after the last tensor", ONE,
                ONE_F32 + b"\x00"),
        hostile("polyglot_zip_appended",
                "a zip archive appended after the buffer (file is a zip too)", ONE,
                ONE_F32 + zip_tail),
        hostile("polyglot_pickle_appended", "a pickle appended after the buffer", ONE,
                ONE_F32 + pickle_tail),
        hostile("second_file_appended", "a whole second safetensors file appended", ONE,
                ONE_F32 + raw(js(ONE), ONE_F32)),
        hostile("truncated_mid_data", "last tensor cut by one byte",
                {"a": A_OK, "b": ent("F32", [2], 4, 12)}, f32(1, 2, 3)[:-1]),
        hostile("truncated_all_data", "header promises 12 bytes, none present",
                {"a": ent("F32", [3], 0, 12)}),
        hostile("size_short", "F32 [2] over 4 bytes", {"a": ent("F32", [2], 0, 4)}, ONE_F32),
        hostile("size_long", "F32 [1] over 8 bytes", {"a": ent("F32", [1], 0, 8)}, f32(1, 2)),
        hostile("bf16_odd_bytes", "BF16 [1] over 3 bytes", {"a": ent("BF16", [1], 0, 3)},
                b"\x00\x3f\x00"),
        hostile("scalar_too_long", "scalar F32 over 8 bytes", {"a": ent("F32", [], 0, 8)},
                f32(1, 2)),
        hostile("scalar_empty_range", "scalar F32 over 0 bytes (a scalar has 1 element, not 0)",
                {"a": ent("F32", [], 0, 0)}),
        hostile("zero_size_nonempty_range", "shape [0] over 4 bytes", {"a": ent("F32", [0], 0, 4)},
                ONE_F32),
        hostile("many_tensors_last_overlaps",
                "5000 tensors, the last one overlaps (and leaves a hole)", many, bytes(5000),
                names=("t00000", "t04999")),
    ]


@section("hostile")
def polyglot_starts() -> list[Case]:
    """Files whose first bytes are a zip or pickle magic."""
    return [
        hostile_file("zip_magic_start",
                     "file starts like a zip local header (length prefix is huge)",
                     b"PK\x03\x04\x14\x00\x00\x00" + js(ONE) + ONE_F32),
        hostile_file("pickle_magic_start", "file is a pickle (length prefix is 0x80 0x02 ...)",
                     b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s."),
    ]


@section("hostile")
def flipped_bytes() -> list[Case]:
    """One byte flipped in the header of an otherwise valid file."""
    base = js({"a": ent("F32", [2], 0, 8)})
    return [
        hostile("flip_shape_digit", "valid file with shape digit 2 flipped to 3",
                base.replace(b"[2]", b"[3]"), f32(1, 2)),
        hostile("flip_offset_digit", "valid file with an end offset 8 flipped to 9",
                base.replace(b"0,8]", b"0,9]"), f32(1, 2)),
        hostile("flip_open_brace", "valid file with '{' flipped to '['", b"[" + base[1:],
                f32(1, 2)),
        hostile("flip_dtype_byte", "valid file with F32 flipped to F33",
                base.replace(b"F32", b"F33"), f32(1, 2)),
    ]


@section("hostile")
def checksum_values() -> list[Case]:
    """A d2l_io.xxh3 checksum string that is not the checksum of the file."""
    return [hostile(f"xxh3_{tag}", f"d2l_io.xxh3 = {value[:20]!r}...: not the checksum of this file",
                    {"__metadata__": {"d2l_io.xxh3": value}, "a": A_OK}, ONE_F32)
            for tag, value in [("non_hex", "zzzzzzzzzzzzzzzz"), ("empty", ""),
                               ("0x_prefix", "0x0123456789abcd"),
                               ("17_digits", "0123456789abcdef0"),
                               ("fullwidth_digits", "\uff10" * 16), ("negative", "-1"),
                               ("spaces", " 0123456789abcd "), ("nul", "0123456789abcde\u0000"),
                               ("json_in_string", "[1, 2, 3]"), ("long", "ab" * 500),
                               ("wrong_value", "0123456789abcdef")]]


@section("hostile")
def checksum_types() -> list[Case]:
    """A d2l_io.xxh3 checksum that is not a string."""
    return [hostile(f"xxh3_type_{tag}", f"d2l_io.xxh3 is a JSON {tag}",
                    {"__metadata__": {"d2l_io.xxh3": value}, "a": A_OK}, ONE_F32)
            for tag, value in [("number", 1234), ("null", None), ("list", ["0123456789abcdef"])]]


# --------------------------------------------------------------------------------------------
# VALID
# --------------------------------------------------------------------------------------------

@section("valid")
def valid_dtypes_and_scalars() -> list[ValidCase]:
    """Every dtype, and scalars."""
    every = []
    for code, (_, npd) in CLASSIC.items():
        values = [0, 1, 1] if code == "BOOL" else [0, 1, 127] if code in ("I8", "U8") else \
            [-3, 2, 100] if code[0] in "IF" else [0, 7, 200]
        every.append((code.lower(), code, (3,), np.array(values, dtype=npd).tobytes()))
    every += [("bf16", "BF16", (2,), b"\x80\x3f\x00\xc0"),  # 1.0, -2.0
              ("e5m2", "F8_E5M2", (3,), b"\x3c\x40\xbc"),
              ("e4m3", "F8_E4M3", (3,), b"\x38\x40\xb8")]
    return [
        valid("f32_2x3", "a plain 2x3 F32 tensor",
              [("w", "F32", (2, 3), arr_bytes("F32", range(6), (2, 3)))]),
        valid("every_dtype",
              "every classic dtype, one tensor each, odd lengths (unaligned offsets)", every),
        valid("scalar_f32", "a scalar (shape [])", [("s", "F32", (), f32(3.25))]),
        valid("scalar_bool", "a BOOL scalar", [("s", "BOOL", (), b"\x01")]),
    ]


@section("valid")
def valid_zero_size() -> list[ValidCase]:
    """Tensors of 0 elements, anywhere in the buffer."""
    return [
        valid("zero_size_1d", "a 0-size tensor [0] over [0,0]", [("z", "F32", (0,), b"")]),
        valid("zero_size_odd_offset", "a 0-size F32 tensor at offset 3, between U8 tensors",
              [("a", "U8", (3,), b"\x01\x02\x03"), ("z", "F32", (3, 0, 2), b""),
               ("b", "U8", (2,), b"\x04\x05")]),
        valid("zero_size_at_end", "a 0-size tensor at the end of the buffer",
              [("a", "U8", (3,), b"abc"), ("z", "I64", (0,), b"")]),
        valid("two_zero_size_same_offset", "two 0-size tensors at the same offset",
              [("a", "U8", (1,), b"a"), ("y", "F32", (0,), b""), ("z", "F64", (0, 5), b""),
               ("b", "U8", (1,), b"b")]),
        valid("zero_size_huge_dim", "shape [0, 2**40]: 0 elements, huge other dimension",
              [("z", "F32", (0, 2**40), b"")]),
        valid("only_zero_size", "file whose byte buffer is empty", [("z", "U8", (0,), b"")]),
    ]


@section("valid")
def valid_special_values() -> list[ValidCase]:
    """NaN and infinities, which are data like any other."""
    return [
        valid("nan_inf_f32", "NaN and +/-Inf are not checked",
              [("x", "F32", (4,), f32(np.nan, np.inf, -np.inf, -0.0))]),
        valid("nan_inf_f16", "NaN and Inf in F16",
              [("x", "F16", (3,), np.array([np.nan, np.inf, -np.inf], dtype="<f2").tobytes())]),
        valid("nan_payload_f64", "a NaN with a non-canonical payload survives byte for byte",
              [("x", "F64", (1,), b"\x01\x00\x00\x00\x00\x00\xf8\x7f")]),
        valid("nan_bf16", "NaN in BF16", [("x", "BF16", (1,), b"\xc0\x7f")]),
    ]


@section("valid")
def valid_metadata() -> list[ValidCase]:
    """No tensors, and __metadata__ maps of every allowed kind."""
    return [
        valid("empty_header", "no tensors: header {} padded", []),
        valid("metadata_only", "only __metadata__, no tensors", [], {"k": "v"}),
        valid("metadata_empty", "an empty __metadata__ map", [("a", "F32", (1,), ONE_F32)], {}),
        valid("metadata_torch_style", "torch-style {'format': 'pt'} metadata",
              [("a", "F32", (1,), ONE_F32)], {"format": "pt"}),
        valid("metadata_odd_strings",
              "metadata with empty, unicode, JSON-looking and long strings",
              [("a", "F32", (1,), ONE_F32)],
              {"": "", "caf\u00e9": "\u65e5\u672c", "json": '{"x": [1, 2]}', "n": "1",
               "long": "x" * 5000, "__metadata__": "nested name"}),
    ]


@section("valid")
def valid_layout_and_names() -> list[ValidCase]:
    """Header order, pretty-printing, odd names, many tensors, a large one, C order."""
    return [
        valid("header_out_of_data_order",
              "header lists tensors in a different order than the buffer",
              [("a", "U8", (2,), b"ab"), ("b", "U8", (2,), b"cd"), ("c", "U8", (1,), b"e")],
              header_order=["c", "a", "b"]),
        valid("pretty_printed_header", "header with newlines and indentation (valid JSON)",
              [("a", "I32", (2,), arr_bytes("I32", [1, -1], (2,)))], {"k": "v"}, indent=2),
        valid("unicode_names", "names with unicode, slashes, dots, spaces and '../'",
              [("caf\u00e9", "U8", (1,), b"1"), ("cafe\u0301", "U8", (1,), b"2"),
               ("layer.0/weight", "U8", (1,), b"3"), ("../../etc/passwd", "U8", (1,), b"4"),
               ("with space", "U8", (1,), b"5"), ("\U0001f600", "U8", (1,), b"6")]),
        valid("tensor_named_like_checksum", "a TENSOR (not metadata) named 'd2l_io.xxh3'",
              [("d2l_io.xxh3", "U8", (2,), b"\x00\x01")]),
        valid("many_tensors", "5000 one-byte tensors",
              [(f"t{i:05d}", "U8", (1,), bytes([i % 256])) for i in range(5000)]),
        valid("largish_tensor", "a 64 KiB F64 tensor",
              [("big", "F64", (64, 128), np.arange(64 * 128, dtype="<f8").tobytes())]),
        valid("row_major", "a 2x3x2 tensor: values must come out in C order",
              [("c", "I16", (2, 3, 2), arr_bytes("I16", range(12), (2, 3, 2)))]),
    ]


@section("valid")
def valid_hand_written_headers() -> list[ValidCase]:
    """Valid headers written by hand: padding, escapes, key order, whitespace."""
    return [
        valid_raw("long_space_padding", "1000 bytes of 0x20 padding after the JSON",
                  js(ONE) + b" " * 1000, ONE_F32, {"a": ("float32", (1,), ONE_F32)}),
        valid_raw("escaped_strings",
                  "JSON escapes: dtype written F\\u0033\\u0032, name \\u00e9\\/x",
                  b'{"\\u00e9\\/x":{"dtype":"F\\u0033\\u0032","shape":[1],"data_offsets":[0,4]}}',
                  ONE_F32, {"\u00e9/x": ("float32", (1,), ONE_F32)}),
        valid_raw("entry_keys_reordered", "data_offsets, shape, dtype in an unusual order",
                  b'{"a":{"data_offsets":[0,4],"shape":[1],"dtype":"F32"}}', ONE_F32,
                  {"a": ("float32", (1,), ONE_F32)}),
        valid_raw("metadata_last", "__metadata__ after the tensors",
                  b'{"a":' + ENTRY + b',"__metadata__":{"k":"v"}}', ONE_F32,
                  {"a": ("float32", (1,), ONE_F32)}, {"k": "v"}),
        valid_raw("json_whitespace_inside", "whitespace between JSON tokens",
                  b'{ "a" : { "dtype" : "F32" ,\n"shape" : [ 1 ] ,\t"data_offsets" : [ 0 , 4 ] } }',
                  ONE_F32, {"a": ("float32", (1,), ONE_F32)}),
        valid_raw("brace_space_padding", "whitespace inside the braces of an empty header",
                  b"{" + b" " * 64 + b"}", b"", {}),
    ]


# --------------------------------------------------------------------------------------------
# AMBIGUOUS
# --------------------------------------------------------------------------------------------

@section("ambiguous")
def ambiguous_bytes_and_padding() -> list[Case]:
    """BOOL bytes other than 0 and 1; a header unpadded, or padded with other JSON whitespace."""
    return [
        ambiguous("bool_byte_2", "BOOL byte 0x02", {"a": ent("BOOL", [2], 0, 2)}, b"\x01\x02"),
        ambiguous("bool_byte_255", "BOOL byte 0xFF", {"a": ent("BOOL", [1], 0, 1)}, b"\xff"),
        ambiguous("unpadded_header", "header not padded to 8 bytes", js(ONE), ONE_F32,
                  names=("a",), pad=False),
    ] + [ambiguous(f"{tag}_padding", f"header padded with {tag} (JSON whitespace, not 0x20)",
                   js(ONE) + ws * 3, ONE_F32, names=("a",), pad=False)
         for tag, ws in [("tab", b"\t"), ("newline", b"\n"), ("cr", b"\r")]]


@section("ambiguous")
def ambiguous_names_and_fields() -> list[Case]:
    """Unknown entry fields, and tensor names or metadata the spec says nothing about."""
    return [
        ambiguous("extra_field", "an unknown field in a tensor entry", {"a": {**A_OK, "extra": 1}},
                  ONE_F32),
        ambiguous("empty_name", 'a tensor named ""', {"": A_OK}, ONE_F32),
        ambiguous("very_long_name", "a 100,000-character tensor name", {"n" * 100_000: A_OK},
                  ONE_F32),
        ambiguous("escaped_nul_in_name", "a name holding \\u0000", {"a\u0000b": A_OK}, ONE_F32),
        ambiguous("lone_surrogate_name",
                  "a name holding the escape \\ud800 (not a Unicode scalar)",
                  b'{"a\\ud800":' + ENTRY + b"}", ONE_F32, names=()),
        ambiguous("lone_surrogate_metadata", "a metadata value holding \\udc00",
                  b'{"__metadata__":{"k":"\\udc00"},"a":' + ENTRY + b"}", ONE_F32, names=("a",)),
    ]


@section("ambiguous")
def ambiguous_shapes() -> list[Case]:
    """Many dimensions, overflowing 0-element shapes, a 0-size tensor inside another."""
    return [
        ambiguous("ndim_40", "40 dimensions of 1 (NumPy 1.x stops at 32)",
                  {"a": ent("F32", [1] * 40, 0, 4)}, ONE_F32),
        ambiguous("ndim_200000", "200,000 dimensions of 1", {"a": ent("F32", [1] * DEEP, 0, 4)},
                  ONE_F32),
        ambiguous("zero_product_overflowing_prefix",
                  "[2**32, 2**32, 0]: 0 elements, but the running "
                  "product overflows u64", {"a": ent("F32", [2**32, 2**32, 0], 0, 0)}),
        ambiguous("zero_size_inside_other", "a 0-size tensor at [2,2], inside a's [0,4]",
                  {"a": A_OK, "z": ent("F32", [0], 2, 2)}, ONE_F32),
    ]


@section("ambiguous")
def newer_dtypes() -> list[Case]:
    """dtypes newer than this loader may know."""
    return [ambiguous(f"newer_dtype_{tag}", f"newer dtype {code} {shape} over {size} bytes",
                      {"a": ent(code, shape, 0, size)}, bytes(range(1, size + 1)))
            for tag, code, shape, size in [("f4_odd_count", "F4", [3], 2),
                                           ("f4_even", "F4", [4], 2),
                                           ("f6_e2m3", "F6_E2M3", [4], 3),
                                           ("f6_e3m2_odd", "F6_E3M2", [3], 3),
                                           ("f8_e8m0", "F8_E8M0", [2], 2),
                                           ("c64", "C64", [1], 8),
                                           ("f8_e4m3fnuz", "F8_E4M3FNUZ", [1], 1)]]


@section("ambiguous")
def ambiguous_entry_forms() -> list[Case]:
    """Forms another reader accepts: a positional entry, null metadata, unknown d2l_io keys."""
    return [
        ambiguous("entry_positional_list",
                  "entry as the list [dtype, shape, data_offsets] (serde's "
                  "derived reader takes a struct from a sequence, so the Rust library loads it)",
                  {"a": ["F32", [1], [0, 4]]}, ONE_F32),
        ambiguous("metadata_null", "__metadata__ is null (the Rust reader takes it as absent)",
                  {"__metadata__": None, "a": A_OK}, ONE_F32),
        ambiguous("unknown_d2l_io_key", "metadata key d2l_io.future that this loader may not know",
                  {"__metadata__": {"d2l_io.future": "1"}, "a": A_OK}, ONE_F32),
    ]
