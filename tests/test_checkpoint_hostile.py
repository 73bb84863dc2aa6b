"""Hostile and damaged safetensors files against ``d2l_utils.checkpoint.load_tensors``.

This corpus was written from the safetensors format description and the public contract of
``d2l_utils.checkpoint`` only, without reading the loader's source or its other tests.

Three module-level lists hold the crafted files, each entry ``(id, bytes, what-it-attacks, ...)``:

* ``HOSTILE``: every file must be refused with ``CheckpointError`` whose message contains the
  file's path; no other exception type may escape, for a full load nor for ``names=[...]``.
* ``VALID``: standard files the spec allows (scalars, 0-size tensors, NaN data, padding, ...);
  they must load with the right names, shapes, dtypes and bytes (no over-refusal).
* ``AMBIGUOUS``: files the spec leaves open (BOOL bytes other than 0/1, unpadded header,
  non-0x20 JSON whitespace as padding, newer dtypes, ...): they must load or raise
  ``CheckpointError``, nothing else.

Beyond the lists: path attacks (directory, missing file, symlink loop, FIFO), truncation and
single-bit-flip sweeps over a small valid file, a header over the 100 MB cap, files written by
``save_tensors`` with damaged data or checksum, and a file rewritten after it was loaded (an
mmap-backed result would change, and die of SIGBUS were the file truncated).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from d2l_utils.checkpoint import CheckpointError, load_tensors, save_tensors

pytestmark = [
    pytest.mark.skipif(sys.byteorder != "little",
                       reason="expected bytes are written for a little-endian host"),
    # files without a d2l_io checksum load with this warning; what it says is tested elsewhere
    pytest.mark.filterwarnings("ignore::d2l_utils.checkpoint.UncheckedCheckpointWarning"),
]

MB_CAP_OVER = 100 * 2**20 + 1  # over the 100 MB header cap whichever "MB" a loader means
DEEP = 200_000  # nesting depth for the recursion attacks


class Case(NamedTuple):
    id: str
    data: bytes
    attack: str
    names: tuple[str, ...] = ()  # names to try with load_tensors(path, names=[name])


class ValidCase(NamedTuple):
    id: str
    data: bytes
    attack: str
    expected: dict  # name -> (dtype name, shape, raw little-endian C-order bytes)
    metadata: dict | None = None  # expected metadata (None: file has no __metadata__)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def pad8(header: bytes) -> bytes:
    """Trailing-pad a header with 0x20 to a multiple of 8, as the safetensors library does."""
    return header + b" " * (-len(header) % 8)


def raw(header: bytes, data: bytes = b"", *, pad: bool = True, n: int | None = None) -> bytes:
    """A file from header bytes; ``n`` overrides the length prefix."""
    h = pad8(header) if pad else header
    return u64(len(h) if n is None else n) + h + data


def js(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ent(dtype, shape, begin, end) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def f32(*values) -> bytes:
    return np.array(values, dtype="<f4").tobytes()


ONE_F32 = f32(1.5)
A_OK = ent("F32", [1], 0, 4)  # a well-formed one-element F32 entry over the first 4 bytes

# dtype code -> (NumPy dtype name of the result, NumPy dtype that makes the test bytes)
CLASSIC = {
    "BOOL": ("bool", "?"), "U8": ("uint8", "<u1"), "I8": ("int8", "<i1"),
    "I16": ("int16", "<i2"), "U16": ("uint16", "<u2"), "F16": ("float16", "<f2"),
    "I32": ("int32", "<i4"), "U32": ("uint32", "<u4"), "F32": ("float32", "<f4"),
    "F64": ("float64", "<f8"), "I64": ("int64", "<i8"), "U64": ("uint64", "<u8"),
}
# ml_dtypes types, compared by name and raw bytes: code -> (dtype name, itemsize)
EXOTIC = {"BF16": ("bfloat16", 2), "F8_E5M2": ("float8_e5m2", 1),
          "F8_E4M3": ("float8_e4m3fn", 1)}


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
    return np.array(values, dtype=CLASSIC[code][1]).reshape(shape).tobytes()


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------

def build_corpus() -> tuple[list[Case], list[ValidCase], list[Case]]:
    """Crafted files: (HOSTILE, VALID, AMBIGUOUS)."""
    hostile: list[Case] = []
    valid: list[ValidCase] = []
    ambiguous: list[Case] = []

    def H(id_, attack, header, data=b"", *, names=None, pad=True, n=None):
        """A hostile case; ``header`` is a dict (serialised compactly) or raw header bytes."""
        if isinstance(header, dict):
            names = tuple(k for k in header if k != "__metadata__") if names is None else names
            header = js(header)
        hostile.append(Case(id_, raw(header, data, pad=pad, n=n), attack, tuple(names or ("a",))))

    def Hb(id_, attack, file_bytes, names=("a",)):
        hostile.append(Case(id_, file_bytes, attack, tuple(names)))

    def A(id_, attack, header, data=b"", *, names=None, pad=True):
        if isinstance(header, dict):
            names = tuple(k for k in header if k != "__metadata__") if names is None else names
            header = js(header)
        ambiguous.append(Case(id_, raw(header, data, pad=pad), attack, tuple(names or ())))

    def V(id_, attack, tensors, metadata=None, **kw):
        data, expected = pack(tensors, metadata, **kw)
        valid.append(ValidCase(id_, data, attack, expected, metadata))

    one = {"a": A_OK}  # a well-formed header for ONE_F32

    # ---- framing: the 8-byte length prefix -----------------------------------------------
    Hb("empty_file", "zero-length file", b"")
    Hb("one_byte", "file shorter than the length prefix", b"\x08")
    Hb("seven_bytes", "length prefix cut at 7 bytes", u64(2)[:7])
    Hb("prefix_only_len0", "8 bytes, header length 0, nothing else", u64(0))
    Hb("header_len_zero_with_body", "header length 0 followed by a JSON header",
       u64(0) + pad8(js(one)) + ONE_F32)
    Hb("header_len_beyond_file", "header length larger than the file", u64(100) + b"{}")
    Hb("header_len_u64_max", "header length 2**64-1 (OverflowError in read/seek)",
       u64(2**64 - 1) + b"{}      ")
    Hb("header_len_2_63", "header length 2**63 (negative as int64)", u64(2**63) + b"{}      ")
    Hb("header_len_2_40", "header length 2**40: f.read(N) would try to allocate 1 TiB",
       u64(2**40) + b"{}      ")
    Hb("header_len_over_cap_small_file", "header length over the 100 MB cap, tiny file",
       u64(MB_CAP_OVER) + b"{}      ")
    H("header_len_one_short", "length prefix one byte short: JSON loses its closing brace",
      js(one), ONE_F32, pad=False, n=len(js(one)) - 1)
    H("header_len_points_mid_json", "length prefix cuts the JSON in the middle",
      js(one), ONE_F32, pad=False, n=10)
    H("header_swallows_data", "length prefix covers the data too (data bytes are spaces, so "
      "the header still parses); the tensor then lies beyond the empty buffer",
      pad8(js(one)), b"    ", pad=False, n=len(pad8(js(one))) + 4)
    H("header_len_exact_no_data", "header runs to the end of file but a tensor needs 4 bytes",
      js(one))

    # ---- header must begin with '{' ---------------------------------------------------------
    H("leading_space", "header begins with a space, not '{'", b" " + js(one), ONE_F32)
    H("leading_newline", "header begins with a newline", b"\n" + js(one), ONE_F32)
    H("utf8_bom", "header begins with a UTF-8 BOM (json.loads(bytes) would accept it)",
      b"\xef\xbb\xbf" + js(one), ONE_F32)
    H("json_list", "header is a JSON list", b"[]")
    H("json_list_of_tensor", "header is a list holding a tensor entry", js([A_OK]), ONE_F32)
    H("json_number", "header is a JSON number", b"1")
    H("json_string", "header is a JSON string", b'"{}"')
    H("json_null", "header is JSON null", b"null")
    H("json_true", "header is JSON true", b"true")
    H("utf16le_header", "header in UTF-16-LE: starts with '{' but holds NULs "
      "(json.loads(bytes) auto-detects UTF-16 and would parse it)",
      json.dumps(one).encode("utf-16-le"), ONE_F32)
    H("utf32le_header", "header in UTF-32-LE", json.dumps(one).encode("utf-32-le"), ONE_F32)

    # ---- encoding -----------------------------------------------------------------------------
    entry = js(A_OK)
    H("invalid_utf8_name", "invalid UTF-8 bytes in a tensor name",
      b'{"\xff\xfe":' + entry + b"}", ONE_F32)
    H("overlong_utf8", "overlong UTF-8 encoding of '/' in a name",
      b'{"a\xc0\xaf":' + entry + b"}", ONE_F32)
    H("utf8_encoded_surrogate", "UTF-8-encoded surrogate (ED A0 80) in a name",
      b'{"a\xed\xa0\x80":' + entry + b"}", ONE_F32)
    H("truncated_utf8_in_metadata", "metadata value ends inside a multi-byte sequence",
      b'{"__metadata__":{"k":"\xc3"},"a":' + entry + b"}", ONE_F32)
    H("latin1_header", "header encoded as Latin-1 (0xE9 for e-acute)",
      '{"caf\u00e9":'.encode("latin-1") + entry + b"}", ONE_F32)

    # ---- JSON syntax ----------------------------------------------------------------------------
    H("not_json", "header is '{' but not JSON", b"{not json}")
    H("truncated_json", "JSON cut mid-object", b'{"a":{"dtype":"F32"')
    H("trailing_comma", "trailing comma", js(one)[:-1] + b",}", ONE_F32)
    H("single_quotes", "single-quoted keys (Python literal, not JSON)",
      b"{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", ONE_F32)
    H("json_comment", "a /* comment */ inside the header", b"{/* x */" + js(one)[1:], ONE_F32)
    H("two_objects", "two JSON objects back to back", js(one) + b"{}", ONE_F32)
    H("trailing_garbage", "non-whitespace after the JSON", js(one) + b"x", ONE_F32)
    H("nul_padding", "header padded with NUL bytes instead of spaces",
      js(one) + b"\x00" * 7, ONE_F32, pad=False)
    H("nul_after_brace", "a NUL byte right after '{'", b"{\x00" + js(one)[1:], ONE_F32)
    H("raw_nul_in_name", "unescaped NUL inside a JSON string", b'{"a\x00":' + entry + b"}",
      ONE_F32)
    H("raw_tab_in_metadata", "unescaped control character inside a metadata string",
      b'{"__metadata__":{"k":"a\tb"},"a":' + entry + b"}", ONE_F32)
    H("formfeed_padding", "padded with form feeds (str.strip() removes them; JSON does not)",
      js(one) + b"\x0c" * 3, ONE_F32, pad=False)
    H("vertical_tab_padding", "padded with vertical tabs", js(one) + b"\x0b" * 3, ONE_F32,
      pad=False)
    H("nbsp_padding", "padded with U+00A0 (str.strip() removes it; JSON does not)",
      js(one) + "\u00a0".encode() * 2, ONE_F32, pad=False)
    H("nan_literal_in_shape", "NaN literal (Python's json accepts it) as a dimension",
      b'{"a":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', ONE_F32)
    H("infinity_in_offsets", "Infinity literal as an offset (int(inf) -> OverflowError)",
      b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,Infinity]}}', ONE_F32)
    H("neg_infinity_in_offsets", "-Infinity literal as an offset",
      b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[-Infinity,4]}}', ONE_F32)
    H("nan_metadata_value", "NaN literal as a metadata value",
      b'{"__metadata__":{"k":NaN},"a":' + entry + b"}", ONE_F32)
    H("huge_digits_in_shape", "a 5000-digit dimension (Python's int() limit -> ValueError)",
      b'{"a":{"dtype":"F32","shape":[1' + b"0" * 5000 + b'],"data_offsets":[0,4]}}',
      ONE_F32)
    H("huge_digits_in_offsets", "a 5000-digit offset",
      b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4' + b"0" * 5000 + b"]}}", ONE_F32)
    H("shape_1e400", "1e400 as a dimension (parses to float inf)",
      b'{"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}}', ONE_F32)
    H("offsets_1e400", "1e400 as an offset",
      b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,1e400]}}', ONE_F32)

    # ---- deep nesting (RecursionError) --------------------------------------------------------
    deep_list = b"[" * DEEP + b"]" * DEEP
    H("deep_list_as_tensor", "200,000 nested lists as a tensor entry",
      b'{"a":' + deep_list + b"}")
    H("deep_dicts", "200,000 nested objects",
      b'{"a":' * DEEP + b"{}" + b"}" * DEEP)
    H("deep_in_shape", "200,000 nested lists inside shape",
      b'{"a":{"dtype":"F32","shape":' + deep_list + b',"data_offsets":[0,4]}}', ONE_F32)
    H("deep_in_data_offsets", "200,000 nested lists inside data_offsets",
      b'{"a":{"dtype":"F32","shape":[1],"data_offsets":' + deep_list + b"}}", ONE_F32)
    H("deep_in_metadata", "200,000 nested lists as a metadata value",
      b'{"__metadata__":{"k":' + deep_list + b'},"a":' + entry + b"}", ONE_F32)
    H("deep_dicts_in_metadata", "200,000 nested objects inside __metadata__",
      b'{"__metadata__":' + b'{"k":' * DEEP + b'"v"' + b"}" * DEEP + b',"a":' + entry + b"}",
      ONE_F32)
    H("deep_unclosed", "200,000 '[' never closed", b'{"a":' + b"[" * DEEP)

    # ---- duplicate keys ---------------------------------------------------------------------
    H("dup_tensor_same_offsets", "the same tensor name twice, same entry",
      b'{"a":' + entry + b',"a":' + entry + b"}", ONE_F32)
    H("dup_tensor_diff_offsets", "the same tensor name twice, covering both halves",
      b'{"a":' + entry + b',"a":' + js(ent("F32", [1], 4, 8)) + b"}", f32(1, 2))
    H("dup_tensor_diff_dtype", "the same name twice with different dtypes, same size",
      b'{"a":' + entry + b',"a":' + js(ent("I32", [1], 0, 4)) + b"}", ONE_F32)
    H("dup_tensor_escaped", 'duplicate name spelled "a" and "\\u0061"',
      b'{"a":' + entry + b',"\\u0061":' + entry + b"}", ONE_F32)
    H("dup_metadata", "__metadata__ twice",
      b'{"__metadata__":{"k":"1"},"__metadata__":{"k":"2"},"a":' + entry + b"}", ONE_F32)
    H("dup_key_inside_metadata", "the same key twice inside __metadata__",
      b'{"__metadata__":{"k":"1","k":"2"},"a":' + entry + b"}", ONE_F32)
    H("dup_field_dtype", "dtype twice in one entry, different values",
      b'{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}', ONE_F32)
    H("dup_field_shape", "shape twice in one entry",
      b'{"a":{"dtype":"F32","shape":[2],"shape":[1],"data_offsets":[0,4]}}', ONE_F32)
    H("dup_field_offsets", "data_offsets twice in one entry",
      b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8],"data_offsets":[0,4]}}',
      ONE_F32)

    # ---- __metadata__ ---------------------------------------------------------------------------
    for tag, value in [("int", 1), ("float", 1.5), ("null", None), ("bool", True),
                       ("dict", {}), ("list", ["v"]), ("nested_dict", {"x": "y"})]:
        H(f"metadata_value_{tag}", f"metadata value of JSON type {tag} (must be a string)",
          {"__metadata__": {"k": value}, "a": A_OK}, ONE_F32)
    for tag, value in [("string", "k=v"), ("list", ["k", "v"]), ("pairs", [["k", "v"]]),
                       ("number", 0), ("bool", False)]:
        H(f"metadata_not_dict_{tag}", f"__metadata__ is a {tag}, not a map",
          {"__metadata__": value, "a": A_OK}, ONE_F32)
    H("metadata_numeric_key", "unquoted numeric key in __metadata__ (not JSON)",
      b'{"__metadata__":{1:"x"},"a":' + entry + b"}", ONE_F32)
    H("metadata_is_tensor_entry", "__metadata__ shaped like a tensor entry",
      {"__metadata__": A_OK}, ONE_F32, names=("a",))
    H("metadata_uppercase", "'__METADATA__' is not the special key: it is a bad tensor entry",
      {"__METADATA__": {"k": "v"}, "a": A_OK}, ONE_F32)

    # ---- dtype --------------------------------------------------------------------------------
    for tag, dtype in [("F128", "F128"), ("Q4_0", "Q4_0"), ("lower_f32", "f32"),
                       ("lower_bf16", "bf16"), ("numpy_name", "float32"),
                       ("numpy_code", "<f4"), ("numpy_object", "O"), ("numpy_void", "V4"),
                       ("numpy_bytes", "S4"), ("numpy_datetime", "M8"), ("empty", ""),
                       ("leading_space", " F32"), ("trailing_space", "F32 "),
                       ("trailing_nul", "F32\u0000"), ("int_number", 32), ("null", None),
                       ("list", ["F32"]), ("dict", {"F32": 1}), ("bool", True)]:
        H(f"dtype_{tag}", f"dtype {dtype!r} is not a safetensors dtype string",
          {"a": {"dtype": dtype, "shape": [1], "data_offsets": [0, 4]}}, ONE_F32)

    # ---- entry structure ------------------------------------------------------------------
    H("missing_dtype", "entry without dtype", {"a": {"shape": [1], "data_offsets": [0, 4]}},
      ONE_F32)
    H("missing_shape", "entry without shape", {"a": {"dtype": "F32", "data_offsets": [0, 4]}},
      ONE_F32)
    H("missing_offsets", "entry without data_offsets", {"a": {"dtype": "F32", "shape": [1]}},
      ONE_F32)
    H("misspelled_keys", "entry keys in the wrong case",
      {"a": {"DType": "F32", "Shape": [1], "Data_Offsets": [0, 4]}}, ONE_F32)
    H("entry_empty", "entry is {}", {"a": {}}, ONE_F32)
    for tag, value in [("string", "F32"), ("list_short", ["F32", [1]]),
                       ("list_misordered", [[1], "F32", [0, 4]]), ("number", 4),
                       ("null", None), ("bool", True)]:
        H(f"entry_{tag}", f"tensor entry is a {tag}", {"a": value}, ONE_F32)
    H("bad_second_entry", "first tensor fine, second tensor's entry is a string",
      {"a": A_OK, "b": "junk"}, ONE_F32)

    # ---- shape --------------------------------------------------------------------------------
    def shp(id_, attack, shape, dtype="F32", offsets=(0, 4), data=ONE_F32):
        H(f"shape_{id_}", attack, {"a": {"dtype": dtype, "shape": shape,
                                         "data_offsets": list(offsets)}}, data)

    shp("neg1", "shape [-1] (reshape(-1) would infer it)", [-1])
    shp("neg2_neg2", "shape [-2, -2]: product 4 matches the data", [-2, -2], "U8")
    shp("zero_neg1", "shape [0, -1]: product 0, empty range", [0, -1], offsets=(0, 0), data=b"")
    shp("float", "dimension 1.0 (float, not integer)", [1.0])
    shp("bool_true", "dimension true (bool is an int subclass in Python)", [True])
    shp("bool_false_empty", "dimension false with an empty range", [False], offsets=(0, 0),
        data=b"")
    shp("string_dim", 'dimension "1"', ["1"])
    shp("null_dim", "dimension null", [None])
    shp("nested_dim", "dimension [1]", [[1]])
    shp("string", 'shape "1" (tuple("1") is a 1-tuple of str)', "1")
    shp("empty_string", 'shape "" (tuple("") == () would make a scalar)', "")
    shp("empty_dict", "shape {} (tuple({}) == () would make a scalar)", {})
    shp("null", "shape null", None)
    shp("int", "shape 1, not a list", 1)
    shp("2_63", "dimension 2**63, empty range", [2**63], offsets=(0, 0), data=b"")
    shp("2_64", "dimension 2**64, empty range", [2**64], offsets=(0, 0), data=b"")
    shp("10_30", "dimension 10**30, empty range", [10**30], offsets=(0, 0), data=b"")
    shp("overflow_2_32_sq", "[2**32, 2**32] F32: the int64 product wraps to 0; empty range",
        [2**32, 2**32], offsets=(0, 0), data=b"")
    shp("overflow_wraps_to_8", "[2**61+1, 8] U8: int64 product wraps to 8, matching 8 bytes",
        [2**61 + 1, 8], "U8", (0, 8), bytes(range(8)))
    shp("overflow_wraps_to_2", "[3, 6148914691236517206] U8: product wraps to 2",
        [3, 6148914691236517206], "U8", (0, 2), b"\x01\x02")
    shp("overflow_wraps_negative", "[2**62, 3] U8: int64 product wraps negative",
        [2**62, 3], "U8", (0, 0), b"")
    shp("2_32_plus_4_u8", "dimension 2**32+4 over 4 bytes (32-bit wrap would match)",
        [2**32 + 4], "U8", (0, 4), b"abcd")

    # ---- data_offsets ---------------------------------------------------------------------------
    def offs(id_, attack, offsets, shape=(1,), dtype="F32", data=ONE_F32):
        H(f"offsets_{id_}", attack, {"a": {"dtype": dtype, "shape": list(shape),
                                           "data_offsets": offsets}}, data)

    offs("len1", "data_offsets of length 1", [4])
    offs("len3", "data_offsets of length 3", [0, 4, 4])
    offs("len0", "data_offsets empty", [])
    offs("negative_begin", "[-4, 0]: size 4 matches, negative begin", [-4, 0])
    offs("negative_both", "[-8, -4] over 8 bytes: a Python slice would read bytes 0..4",
         [-8, -4], data=f32(1, 2))
    offs("floats", "[0.0, 4.0]", [0.0, 4.0])
    offs("fraction", "[0, 4.5]", [0, 4.5])
    offs("strings", '["0", "4"]', ["0", "4"])
    offs("nulls", "[null, null]", [None, None])
    offs("bools", "[false, true] over a 1-byte U8 (bools are ints in Python)", [False, True],
         dtype="U8", data=b"\x07")
    offs("string_2chars", 'data_offsets "04" (unpacks into two characters)', "04")
    offs("dict", 'data_offsets {"0": 0, "1": 4}', {"0": 0, "1": 4})
    offs("int", "data_offsets 4", 4)
    offs("null", "data_offsets null", None)
    offs("nested", "[[0], [4]]", [[0], [4]])
    offs("begin_gt_end", "[4, 0]", [4, 0])
    offs("end_beyond_file", "[0, 400] with 4 bytes of data", [0, 400], shape=(100,))
    offs("both_beyond_file", "[400, 404] with 4 bytes of data", [400, 404])
    offs("claim_2_60", "U8 [2**60] over [0, 2**60]: a 1 EiB claim on a 4-byte buffer",
         [0, 2**60], shape=(2**60,), dtype="U8")
    offs("claim_2_60_f64", "F64 [2**57] over [0, 2**60]", [0, 2**60], shape=(2**57,),
         dtype="F64")
    offs("end_u64_max", "[0, 2**64-1]", [0, 2**64 - 1], shape=(2**64 - 1,), dtype="U8")
    offs("end_2_64", "[0, 2**64] (does not fit u64)", [0, 2**64], shape=(0,))
    start = 0  # absolute offsets: find the fixed point of "8 + padded header length"
    while start != 8 + len(pad8(js({"a": ent("F32", [1], start, start + 4)}))):
        start = 8 + len(pad8(js({"a": ent("F32", [1], start, start + 4)})))
    offs("absolute", "offsets counted from the start of the file, not of the buffer",
         [start, start + 4])
    offs("zero_size_past_end", "0-size tensor at [100, 100] on a 4-byte buffer", [100, 100],
         shape=(0,))

    # ---- layout: overlaps, holes, trailing bytes ------------------------------------------------
    H("overlap_partial", "a [0,8] and b [4,12] overlap",
      {"a": ent("U8", [8], 0, 8), "b": ent("U8", [8], 4, 12)}, bytes(12))
    H("alias_same_range", "a and b share [0,4]",
      {"a": A_OK, "b": A_OK}, ONE_F32)
    H("alias_hides_hole", "a and b share [0,4], c at [8,12]: sizes sum to the buffer length "
      "and the last end is the buffer end, yet [4,8] is a hole",
      {"a": A_OK, "b": A_OK, "c": ent("F32", [1], 8, 12)}, f32(1, 2, 3))
    H("overlap_contained", "F64 a over [0,8] contains b [0,4] and c [4,8]",
      {"a": ent("F64", [1], 0, 8), "b": A_OK, "c": ent("F32", [1], 4, 8)}, f32(1, 2))
    H("hole_between", "a [0,4], b [8,12]: bytes 4..8 unindexed",
      {"a": A_OK, "b": ent("F32", [1], 8, 12)}, f32(1, 2, 3))
    H("hole_at_start", "only tensor at [4,8]: bytes 0..4 unindexed",
      {"a": ent("F32", [1], 4, 8)}, f32(1, 2))
    H("trailing_byte", "one unindexed byte after the last tensor", one, ONE_F32 + b"\x00")
    zip_tail = (b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + bytes(16) + b"\x01\x00\x00\x00x" +
                b"PK\x05\x06" + bytes(18))
    H("polyglot_zip_appended", "a zip archive appended after the buffer (file is a zip too)",
      one, ONE_F32 + zip_tail)
    pickle_tail = b"\x80\x02cos\ngetcwd\n)R."
    H("polyglot_pickle_appended", "a pickle appended after the buffer", one,
      ONE_F32 + pickle_tail)
    H("second_file_appended", "a whole second safetensors file appended", one,
      ONE_F32 + raw(js(one), ONE_F32))
    H("truncated_mid_data", "last tensor cut by one byte",
      {"a": A_OK, "b": ent("F32", [2], 4, 12)}, f32(1, 2, 3)[:-1])
    H("truncated_all_data", "header promises 12 bytes, none present",
      {"a": ent("F32", [3], 0, 12)})
    H("size_short", "F32 [2] over 4 bytes", {"a": ent("F32", [2], 0, 4)}, ONE_F32)
    H("size_long", "F32 [1] over 8 bytes", {"a": ent("F32", [1], 0, 8)}, f32(1, 2))
    H("bf16_odd_bytes", "BF16 [1] over 3 bytes", {"a": ent("BF16", [1], 0, 3)}, b"\x00\x3f\x00")
    H("scalar_too_long", "scalar F32 over 8 bytes", {"a": ent("F32", [], 0, 8)}, f32(1, 2))
    H("scalar_empty_range", "scalar F32 over 0 bytes (a scalar has 1 element, not 0)",
      {"a": ent("F32", [], 0, 0)})
    H("zero_size_nonempty_range", "shape [0] over 4 bytes", {"a": ent("F32", [0], 0, 4)},
      ONE_F32)
    many = {f"t{i:05d}": ent("U8", [1], i, i + 1) for i in range(5000)}
    many["t04999"] = ent("U8", [1], 4997, 4998)  # overlaps t04997; [4999, 5000) is a hole
    H("many_tensors_last_overlaps", "5000 tensors, the last one overlaps (and leaves a hole)",
      many, bytes(5000), names=("t00000", "t04999"))

    # ---- polyglot starts: the first bytes are a zip / pickle magic ------------------------------
    Hb("zip_magic_start", "file starts like a zip local header (length prefix is huge)",
       b"PK\x03\x04\x14\x00\x00\x00" + js(one) + ONE_F32)
    Hb("pickle_magic_start", "file is a pickle (length prefix is 0x80 0x02 ...)",
       b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.")

    # ---- flipped bytes in an otherwise valid file -----------------------------------------------
    base = js({"a": ent("F32", [2], 0, 8)})
    H("flip_shape_digit", "valid file with shape digit 2 flipped to 3",
      base.replace(b"[2]", b"[3]"), f32(1, 2))
    H("flip_offset_digit", "valid file with an end offset 8 flipped to 9",
      base.replace(b"0,8]", b"0,9]"), f32(1, 2))
    H("flip_open_brace", "valid file with '{' flipped to '['", b"[" + base[1:], f32(1, 2))
    H("flip_dtype_byte", "valid file with F32 flipped to F33", base.replace(b"F32", b"F33"),
      f32(1, 2))

    # ---- a checksum key that is garbage ---------------------------------------------------------
    for tag, value in [("non_hex", "zzzzzzzzzzzzzzzz"), ("empty", ""),
                       ("0x_prefix", "0x0123456789abcd"), ("17_digits", "0123456789abcdef0"),
                       ("fullwidth_digits", "\uff10" * 16), ("negative", "-1"),
                       ("spaces", " 0123456789abcd "), ("nul", "0123456789abcde\u0000"),
                       ("json_in_string", "[1, 2, 3]"), ("long", "ab" * 500),
                       ("wrong_value", "0123456789abcdef")]:
        H(f"xxh3_{tag}", f"d2l_io.xxh3 = {value[:20]!r}...: not the checksum of this file",
          {"__metadata__": {"d2l_io.xxh3": value}, "a": A_OK}, ONE_F32)
    for tag, value in [("number", 1234), ("null", None), ("list", ["0123456789abcdef"])]:
        H(f"xxh3_type_{tag}", f"d2l_io.xxh3 is a JSON {tag}",
          {"__metadata__": {"d2l_io.xxh3": value}, "a": A_OK}, ONE_F32)

    # ================================ VALID =====================================================
    V("f32_2x3", "a plain 2x3 F32 tensor",
      [("w", "F32", (2, 3), arr_bytes("F32", range(6), (2, 3)))])
    dtypes = []
    for code, (_, npd) in CLASSIC.items():
        values = [0, 1, 1] if code == "BOOL" else [0, 1, 127] if code in ("I8", "U8") else \
            [-3, 2, 100] if code[0] in "IF" else [0, 7, 200]
        dtypes.append((code.lower(), code, (3,), np.array(values, dtype=npd).tobytes()))
    dtypes += [("bf16", "BF16", (2,), b"\x80\x3f\x00\xc0"),  # 1.0, -2.0
               ("e5m2", "F8_E5M2", (3,), b"\x3c\x40\xbc"),
               ("e4m3", "F8_E4M3", (3,), b"\x38\x40\xb8")]
    V("every_dtype", "every classic dtype, one tensor each, odd lengths (unaligned offsets)",
      dtypes)
    V("scalar_f32", "a scalar (shape [])", [("s", "F32", (), f32(3.25))])
    V("scalar_bool", "a BOOL scalar", [("s", "BOOL", (), b"\x01")])
    V("zero_size_1d", "a 0-size tensor [0] over [0,0]", [("z", "F32", (0,), b"")])
    V("zero_size_odd_offset", "a 0-size F32 tensor at offset 3, between U8 tensors",
      [("a", "U8", (3,), b"\x01\x02\x03"), ("z", "F32", (3, 0, 2), b""),
       ("b", "U8", (2,), b"\x04\x05")])
    V("zero_size_at_end", "a 0-size tensor at the end of the buffer",
      [("a", "U8", (3,), b"abc"), ("z", "I64", (0,), b"")])
    V("two_zero_size_same_offset", "two 0-size tensors at the same offset",
      [("a", "U8", (1,), b"a"), ("y", "F32", (0,), b""), ("z", "F64", (0, 5), b""),
       ("b", "U8", (1,), b"b")])
    V("zero_size_huge_dim", "shape [0, 2**40]: 0 elements, huge other dimension",
      [("z", "F32", (0, 2**40), b"")])
    V("only_zero_size", "file whose byte buffer is empty", [("z", "U8", (0,), b"")])
    V("nan_inf_f32", "NaN and +/-Inf are not checked",
      [("x", "F32", (4,), f32(np.nan, np.inf, -np.inf, -0.0))])
    V("nan_inf_f16", "NaN and Inf in F16",
      [("x", "F16", (3,), np.array([np.nan, np.inf, -np.inf], dtype="<f2").tobytes())])
    V("nan_payload_f64", "a NaN with a non-canonical payload survives byte for byte",
      [("x", "F64", (1,), b"\x01\x00\x00\x00\x00\x00\xf8\x7f")])
    V("nan_bf16", "NaN in BF16", [("x", "BF16", (1,), b"\xc0\x7f")])
    V("empty_header", "no tensors: header {} padded", [])
    V("metadata_only", "only __metadata__, no tensors", [], {"k": "v"})
    V("metadata_empty", "an empty __metadata__ map", [("a", "F32", (1,), ONE_F32)], {})
    V("metadata_torch_style", "torch-style {'format': 'pt'} metadata",
      [("a", "F32", (1,), ONE_F32)], {"format": "pt"})
    V("metadata_odd_strings", "metadata with empty, unicode, JSON-looking and long strings",
      [("a", "F32", (1,), ONE_F32)],
      {"": "", "caf\u00e9": "\u65e5\u672c", "json": '{"x": [1, 2]}', "n": "1", "long": "x" * 5000,
       "__metadata__": "nested name"})
    V("header_out_of_data_order", "header lists tensors in a different order than the buffer",
      [("a", "U8", (2,), b"ab"), ("b", "U8", (2,), b"cd"), ("c", "U8", (1,), b"e")],
      header_order=["c", "a", "b"])
    V("pretty_printed_header", "header with newlines and indentation (valid JSON)",
      [("a", "I32", (2,), arr_bytes("I32", [1, -1], (2,)))], {"k": "v"}, indent=2)
    V("unicode_names", "names with unicode, slashes, dots, spaces and '../'",
      [("caf\u00e9", "U8", (1,), b"1"), ("cafe\u0301", "U8", (1,), b"2"),
       ("layer.0/weight", "U8", (1,), b"3"), ("../../etc/passwd", "U8", (1,), b"4"),
       ("with space", "U8", (1,), b"5"), ("\U0001f600", "U8", (1,), b"6")])
    V("tensor_named_like_checksum", "a TENSOR (not metadata) named 'd2l_io.xxh3'",
      [("d2l_io.xxh3", "U8", (2,), b"\x00\x01")])
    V("many_tensors", "5000 one-byte tensors",
      [(f"t{i:05d}", "U8", (1,), bytes([i % 256])) for i in range(5000)])
    V("largish_tensor", "a 64 KiB F64 tensor",
      [("big", "F64", (64, 128), np.arange(64 * 128, dtype="<f8").tobytes())])
    V("row_major", "a 2x3x2 tensor: values must come out in C order",
      [("c", "I16", (2, 3, 2), arr_bytes("I16", range(12), (2, 3, 2)))])

    # hand-written valid headers
    def Vraw(id_, attack, header: bytes, data: bytes, expected, metadata=None, pad=True):
        valid.append(ValidCase(id_, raw(header, data, pad=pad), attack, expected, metadata))

    Vraw("long_space_padding", "1000 bytes of 0x20 padding after the JSON",
         js(one) + b" " * 1000, ONE_F32, {"a": ("float32", (1,), ONE_F32)})
    Vraw("escaped_strings", "JSON escapes: dtype written F\\u0033\\u0032, name \\u00e9\\/x",
         b'{"\\u00e9\\/x":{"dtype":"F\\u0033\\u0032","shape":[1],"data_offsets":[0,4]}}',
         ONE_F32, {"\u00e9/x": ("float32", (1,), ONE_F32)})
    Vraw("entry_keys_reordered", "data_offsets, shape, dtype in an unusual order",
         b'{"a":{"data_offsets":[0,4],"shape":[1],"dtype":"F32"}}', ONE_F32,
         {"a": ("float32", (1,), ONE_F32)})
    Vraw("metadata_last", "__metadata__ after the tensors",
         b'{"a":' + entry + b',"__metadata__":{"k":"v"}}', ONE_F32,
         {"a": ("float32", (1,), ONE_F32)}, {"k": "v"})
    Vraw("json_whitespace_inside", "whitespace between JSON tokens",
         b'{ "a" : { "dtype" : "F32" ,\n"shape" : [ 1 ] ,\t"data_offsets" : [ 0 , 4 ] } }',
         ONE_F32, {"a": ("float32", (1,), ONE_F32)})
    Vraw("brace_space_padding", "whitespace inside the braces of an empty header",
         b"{" + b" " * 64 + b"}", b"", {})

    # =============================== AMBIGUOUS ==================================================
    A("bool_byte_2", "BOOL byte 0x02", {"a": ent("BOOL", [2], 0, 2)}, b"\x01\x02")
    A("bool_byte_255", "BOOL byte 0xFF", {"a": ent("BOOL", [1], 0, 1)}, b"\xff")
    A("unpadded_header", "header not padded to 8 bytes", js(one), ONE_F32, names=("a",),
      pad=False)
    for tag, ws in [("tab", b"\t"), ("newline", b"\n"), ("cr", b"\r")]:
        A(f"{tag}_padding", f"header padded with {tag} (JSON whitespace, not 0x20)",
          js(one) + ws * 3, ONE_F32, names=("a",), pad=False)
    A("extra_field", "an unknown field in a tensor entry",
      {"a": {**A_OK, "extra": 1}}, ONE_F32)
    A("empty_name", 'a tensor named ""', {"": A_OK}, ONE_F32)
    A("very_long_name", "a 100,000-character tensor name", {"n" * 100_000: A_OK}, ONE_F32)
    A("escaped_nul_in_name", "a name holding \\u0000", {"a\u0000b": A_OK}, ONE_F32)
    A("lone_surrogate_name", "a name holding the escape \\ud800 (not a Unicode scalar)",
      b'{"a\\ud800":' + entry + b"}", ONE_F32, names=())
    A("lone_surrogate_metadata", "a metadata value holding \\udc00",
      b'{"__metadata__":{"k":"\\udc00"},"a":' + entry + b"}", ONE_F32, names=("a",))
    A("ndim_40", "40 dimensions of 1 (NumPy 1.x stops at 32)",
      {"a": ent("F32", [1] * 40, 0, 4)}, ONE_F32)
    A("ndim_200000", "200,000 dimensions of 1", {"a": ent("F32", [1] * DEEP, 0, 4)}, ONE_F32)
    A("zero_product_overflowing_prefix", "[2**32, 2**32, 0]: 0 elements, but the running "
      "product overflows u64", {"a": ent("F32", [2**32, 2**32, 0], 0, 0)})
    A("zero_size_inside_other", "a 0-size tensor at [2,2], inside a's [0,4]",
      {"a": A_OK, "z": ent("F32", [0], 2, 2)}, ONE_F32)
    for tag, code, shape, size in [("f4_odd_count", "F4", [3], 2), ("f4_even", "F4", [4], 2),
                                   ("f6_e2m3", "F6_E2M3", [4], 3),
                                   ("f6_e3m2_odd", "F6_E3M2", [3], 3),
                                   ("f8_e8m0", "F8_E8M0", [2], 2), ("c64", "C64", [1], 8),
                                   ("f8_e4m3fnuz", "F8_E4M3FNUZ", [1], 1)]:
        A(f"newer_dtype_{tag}", f"newer dtype {code} {shape} over {size} bytes",
          {"a": ent(code, shape, 0, size)}, bytes(range(1, size + 1)))
    A("entry_positional_list", "entry as the list [dtype, shape, data_offsets] (serde's "
      "derived reader takes a struct from a sequence, so the Rust library loads it)",
      {"a": ["F32", [1], [0, 4]]}, ONE_F32)
    A("metadata_null", "__metadata__ is null (the Rust reader takes it as absent)",
      {"__metadata__": None, "a": A_OK}, ONE_F32)
    A("unknown_d2l_io_key", "metadata key d2l_io.future that this loader may not know",
      {"__metadata__": {"d2l_io.future": "1"}, "a": A_OK}, ONE_F32)

    return hostile, valid, ambiguous


HOSTILE, VALID, AMBIGUOUS = build_corpus()


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def expect_refusal(path: Path, **kwargs) -> CheckpointError:
    """load_tensors must raise CheckpointError (and nothing else) naming the path."""
    with pytest.raises(CheckpointError) as info:
        load_tensors(path, **kwargs)
    message = str(info.value)
    assert str(path) in message, f"path missing from message: {message!r}"
    assert message.replace(str(path), "").strip(" :'\"()"), "message says nothing but the path"
    return info.value


def load_or_refuse(path: Path, **kwargs):
    """For cases the spec leaves open: returns the result, or None after a clean refusal."""
    try:
        result = load_tensors(path, **kwargs)
    except CheckpointError as exc:
        assert str(path) in str(exc), f"path missing from message: {exc!r}"
        return None
    tensors, metadata = result
    assert isinstance(tensors, dict)
    assert metadata is None or isinstance(metadata, dict)
    for name, arr in tensors.items():
        assert isinstance(name, str) and isinstance(arr, np.ndarray)
    return result


def check_loaded(tensors, expected):
    assert set(tensors) == set(expected)
    for name, (dtype_name, shape, data) in expected.items():
        arr = tensors[name]
        assert isinstance(arr, np.ndarray), name
        assert arr.dtype.name == dtype_name, (name, arr.dtype)
        assert arr.shape == shape, (name, arr.shape)
        assert arr.tobytes() == data, name  # tobytes() is C order: checks row-major layout


def test_corpus_sizes():
    ids = [c.id for c in HOSTILE + VALID + AMBIGUOUS]
    assert len(ids) == len(set(ids))
    assert len(HOSTILE) >= 60 and len(VALID) >= 10
    assert issubclass(CheckpointError, ValueError)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One directory for the parametrized cases (a tmp_path each costs more than the load)."""
    return tmp_path_factory.mktemp("checkpoint_hostile")


@pytest.mark.parametrize("case", HOSTILE, ids=[c.id for c in HOSTILE])
def test_hostile_file_is_refused(workdir, case):
    path = workdir / f"hostile_{case.id}.safetensors"
    path.write_bytes(case.data)
    expect_refusal(path)
    for name in dict.fromkeys(case.names[:1] + case.names[-1:]):  # first and last, once each
        expect_refusal(path, names=[name])


@pytest.mark.parametrize("case", VALID, ids=[c.id for c in VALID])
def test_valid_file_loads(workdir, case):
    path = workdir / f"valid_{case.id}.safetensors"
    path.write_bytes(case.data)
    tensors, metadata = load_tensors(path)
    check_loaded(tensors, case.expected)
    if case.metadata:
        assert metadata == case.metadata
    else:
        assert not metadata  # None or {}
    if case.expected:
        name = sorted(case.expected)[-1]
        subset, _ = load_tensors(path, names=[name])
        check_loaded(subset, {name: case.expected[name]})


@pytest.mark.parametrize("case", AMBIGUOUS, ids=[c.id for c in AMBIGUOUS])
def test_ambiguous_file_loads_or_is_refused(workdir, case):
    path = workdir / f"ambiguous_{case.id}.safetensors"
    path.write_bytes(case.data)
    load_or_refuse(path)
    for name in case.names[:1]:
        result = load_or_refuse(path, names=[name])
        if result is not None:
            assert set(result[0]) == {name}


def test_bool_bytes_load_as_bool_or_are_refused(tmp_path):
    path = tmp_path / "bool.safetensors"
    path.write_bytes(raw(js({"a": ent("BOOL", [3], 0, 3)}), b"\x00\x02\xff"))
    result = load_or_refuse(path)
    if result is not None:
        assert result[0]["a"].dtype == np.bool_ and result[0]["a"].shape == (3,)


def test_missing_name_is_refused_or_omitted(tmp_path):
    path = tmp_path / "valid.safetensors"
    path.write_bytes(raw(js({"a": A_OK}), ONE_F32))
    try:
        tensors, _ = load_tensors(path, names=["nope"])
    except (CheckpointError, KeyError):
        return
    assert "nope" not in tensors


# ---- sweeps over one small valid file ---------------------------------------------------------

SMALL_FILE, SMALL_EXPECTED = pack(
    [("a", "F32", (2,), f32(1, 2)), ("b", "U8", (3,), b"\x05\x06\x07")], {"k": "v"})


def test_every_truncation_is_refused(tmp_path):
    """Every strict prefix of a file whose buffer ends in data must be refused."""
    path = tmp_path / "cut.safetensors"
    for length in range(len(SMALL_FILE)):
        path.write_bytes(SMALL_FILE[:length])
        expect_refusal(path)
    path.write_bytes(SMALL_FILE)
    check_loaded(load_tensors(path)[0], SMALL_EXPECTED)


def test_every_header_bit_flip_loads_or_is_refused(tmp_path):
    """Flip bits in the length prefix and the header: load or CheckpointError, nothing else."""
    path = tmp_path / "flip.safetensors"
    n = struct.unpack("<Q", SMALL_FILE[:8])[0]
    for pos in range(8 + n):
        for mask in (0x01, 0x20, 0x80):
            damaged = bytearray(SMALL_FILE)
            damaged[pos] ^= mask
            path.write_bytes(bytes(damaged))
            load_or_refuse(path)


def test_appended_byte_is_refused(tmp_path):
    path = tmp_path / "long.safetensors"
    path.write_bytes(SMALL_FILE + b" ")
    expect_refusal(path)
    expect_refusal(path, names=["b"])


# ---- paths that are not regular files ----------------------------------------------------------

def test_directory_is_refused(tmp_path):
    path = tmp_path / "dir.safetensors"
    path.mkdir()
    expect_refusal(path)


def test_missing_file_is_refused(tmp_path):
    expect_refusal(tmp_path / "missing.safetensors")


def test_symlink_loop_is_refused(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.symlink_to(b)
    b.symlink_to(a)
    expect_refusal(a)


def test_dangling_symlink_is_refused(tmp_path):
    link = tmp_path / "link.safetensors"
    link.symlink_to(tmp_path / "nowhere")
    expect_refusal(link)


def test_symlink_to_valid_file_and_str_path_load(tmp_path):
    target = tmp_path / "real.safetensors"
    target.write_bytes(SMALL_FILE)
    link = tmp_path / "link.safetensors"
    link.symlink_to(target)
    check_loaded(load_tensors(link)[0], SMALL_EXPECTED)
    check_loaded(load_tensors(str(target))[0], SMALL_EXPECTED)


def test_odd_path_characters_appear_in_message(tmp_path):
    path = tmp_path / "we ird \u00fc [x].safetensors"
    path.write_bytes(u64(2**64 - 1))
    expect_refusal(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "locked.safetensors"
    path.write_bytes(SMALL_FILE)
    path.chmod(0)
    try:
        expect_refusal(path)
    finally:
        path.chmod(0o600)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_hanging(tmp_path):
    """A named pipe with no writer: opening it for reading blocks forever unless checked."""
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = load_tensors(fifo)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["exc"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(1.0)
    hung = thread.is_alive()
    if hung:  # unblock the loader: a writer that closes at once gives it EOF
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(2.0)
    assert not hung, "load_tensors blocked on a FIFO"
    exc = outcome.get("exc")
    assert isinstance(exc, CheckpointError), outcome
    assert str(fifo) in str(exc)


# ---- the header cap -----------------------------------------------------------------------------

def test_header_over_cap_is_refused_even_when_it_is_valid_json(tmp_path):
    """A real header of 100 MiB + 1 bytes ('{', spaces, '}'): valid JSON, but over the cap."""
    path = tmp_path / "big.safetensors"
    chunk = b" " * 2**20
    spaces = MB_CAP_OVER - 2
    with open(path, "wb") as f:
        f.write(u64(MB_CAP_OVER) + b"{")
        for _ in range(spaces // len(chunk)):
            f.write(chunk)
        f.write(b" " * (spaces % len(chunk)) + b"}")
    assert path.stat().st_size == 8 + MB_CAP_OVER
    expect_refusal(path)


# ---- files written by save_tensors ---------------------------------------------------------------

def _saved(tmp_path) -> tuple[Path, dict, int]:
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(5, dtype=np.int64)}
    path = save_tensors(tmp_path / "saved.safetensors", tensors, {"note": "x"})
    path = Path(path)
    n = struct.unpack("<Q", path.read_bytes()[:8])[0]
    return path, tensors, n


def _header(path: Path) -> dict:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n])


def test_save_then_load_round_trip(tmp_path):
    path, tensors, _ = _saved(tmp_path)
    loaded, metadata = load_tensors(path)
    assert set(loaded) == set(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
        assert loaded[name].dtype == arr.dtype
    assert metadata["note"] == "x"
    only, _ = load_tensors(path, names=["b"])
    assert set(only) == {"b"}
    np.testing.assert_array_equal(only["b"], tensors["b"])


def test_saved_file_with_flipped_data_byte_is_refused(tmp_path):
    """The structure is intact; only the checksum can tell."""
    path, tensors, n = _saved(tmp_path)
    header = _header(path)
    begin = header["a"]["data_offsets"][0]
    data = bytearray(path.read_bytes())
    data[8 + n + begin] ^= 0x01
    path.write_bytes(bytes(data))
    expect_refusal(path)
    expect_refusal(path, names=["a"])
    # asking only for the undamaged tensor: refuse, or return it intact
    result = load_or_refuse(path, names=["b"])
    if result is not None:
        np.testing.assert_array_equal(result[0]["b"], tensors["b"])


def test_saved_file_with_altered_checksum_is_refused(tmp_path):
    """Change one hex digit of the d2l_io. checksum value (whatever its layout), nothing else."""
    path, _, n = _saved(tmp_path)
    buffer = path.read_bytes()[8 + n:]
    header = _header(path)
    keys = [k for k in header.get("__metadata__", {}) if k.startswith("d2l_io.")]
    assert keys, "save_tensors wrote no d2l_io. checksum"
    value = header["__metadata__"][keys[0]]
    pos = max(i for i, ch in enumerate(value) if ch in "0123456789abcdefABCDEF")
    header["__metadata__"][keys[0]] = value[:pos] + ("1" if value[pos] == "0" else "0") + \
        value[pos + 1:]
    path.write_bytes(raw(js(header), buffer))
    expect_refusal(path)
    for name in ("a", "b"):  # the digit may guard only one tensor: refuse, or load cleanly
        load_or_refuse(path, names=[name])


def test_saved_file_with_trailing_bytes_is_refused(tmp_path):
    path, _, _ = _saved(tmp_path)
    path.write_bytes(path.read_bytes() + b"PK\x05\x06" + bytes(18))
    expect_refusal(path)


def test_saved_file_without_checksum_still_loads(tmp_path):
    """Dropping the checksum leaves a plain safetensors file, which must be accepted."""
    path, tensors, n = _saved(tmp_path)
    data = path.read_bytes()
    header = _header(path)
    meta = {k: v for k, v in header.pop("__metadata__", {}).items()
            if not k.startswith("d2l_io.")}
    if meta:
        header = {"__metadata__": meta, **header}
    path.write_bytes(raw(js(header), data[8 + n:]))
    loaded, metadata = load_tensors(path)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)
    assert metadata["note"] == "x"


# ---- results must not depend on the file after loading (SIGBUS) ---------------------------------

def test_result_does_not_alias_the_file(tmp_path):
    """Arrays backed by an mmap of the file change when the file is rewritten, and die of SIGBUS
    when it is truncated; rewrite the file in place (no truncation) and check nothing moved."""
    path = tmp_path / "mapped.safetensors"
    original = np.arange(512 * 512, dtype="<f8").reshape(512, 512)
    data, _ = pack([("big", "F64", (512, 512), original.tobytes()),
                    ("small", "U8", (4,), b"\x01\x02\x03\x04")])
    path.write_bytes(data)
    tensors, _ = load_tensors(path)
    with open(path, "r+b") as f:  # same size, different bytes: no SIGBUS even if mapped
        f.write(data[:-4 - original.nbytes] + bytes(original.nbytes + 4))
    np.testing.assert_array_equal(tensors["big"], original)
    assert tensors["small"].tobytes() == b"\x01\x02\x03\x04"
