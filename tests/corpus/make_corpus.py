#!/usr/bin/env python3
# Writes the seed corpus that tests/test_tensor_io.cpp reads: small valid and hostile safetensors,
# .npy and CSV files. Run once by hand (needs numpy); the tests never call Python.
#
# The valid files' values follow formulas that the C++ test computes again:
#   f4 / f8 arrays (3, 4): element k = 4*i + j holds (k - 5) / 3, rounded once to the dtype.
# The safetensors files are written here byte by byte the way the reference implementation
# (huggingface/safetensors, serialize()) writes them: compact JSON, "__metadata__" first, tensors
# sorted by dtype alignment then name, header padded with spaces to a multiple of 8.
import io
import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def put(sub, name, data):
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    assert len(data) < 4096, name
    with open(os.path.join(HERE, sub, name), "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------------------------
# safetensors


def st_file(header, data, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def st_raw(header_text, data):
    """A file with a header given as text (for headers json.dumps cannot write)."""
    return struct.pack("<Q", len(header_text)) + header_text + data


k12 = (np.arange(12, dtype=np.float64) - 5) / 3
w32 = k12.astype("<f4").reshape(3, 4)
b64 = k12[:4].astype("<f8")

# The reference's order: F64 (alignment 8) before F32 (4), then by name.
put("safetensors", "valid_mixed.safetensors",
    st_file({"__metadata__": {"format": "pt"},
             "bias": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]},
             "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [32, 32]},
             "weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [32, 80]}},
            b64.tobytes() + w32.tobytes()))

# Hand-made binary16 and bfloat16 bit patterns; the test states the value of each.
f16_bits = [0x0001, 0x03FF, 0x0400, 0x3C00, 0xC000, 0x7BFF, 0x3555, 0x8000]
bf16_bits = [0x3F80, 0xC0A0, 0x0001, 0x7F7F, 0x3EAB, 0x0000]
put("safetensors", "f16_bf16.safetensors",
    st_file({"half": {"dtype": "F16", "shape": [2, 4], "data_offsets": [0, 16]},
             "brain": {"dtype": "BF16", "shape": [6], "data_offsets": [16, 28]}},
            struct.pack("<8H", *f16_bits) + struct.pack("<6H", *bf16_bits)))

four = np.arange(4, dtype="<f4").tobytes()  # 16 bytes
put("safetensors", "header_2pow60.safetensors", struct.pack("<Q", 1 << 60) + b"{}")
put("safetensors", "too_short.safetensors", b"\x10\x00\x00")
put("safetensors", "overlap.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, four))
put("safetensors", "out_of_bounds.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}, four))
put("safetensors", "hole.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, four))
put("safetensors", "trailing_bytes.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, four))
put("safetensors", "lying_size.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, four))
put("safetensors", "unknown_dtype.safetensors",
    st_file({"step": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}}, four))
put("safetensors", "shape_overflow.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [1 << 32, 1 << 32, 4], "data_offsets": [0, 16]}},
            four))
put("safetensors", "negative_shape.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, four))
nan32 = np.array([[0.5, 1.0], [np.nan, 2.0]], dtype="<f4").tobytes()
put("safetensors", "nan_weight.safetensors",
    st_file({"layers.0.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},
            nan32))
put("safetensors", "inf_f16.safetensors",
    st_file({"h": {"dtype": "F16", "shape": [3], "data_offsets": [0, 6]}},
            struct.pack("<3H", 0x3C00, 0xFC00, 0x0000)))
put("safetensors", "duplicate_tensor.safetensors",
    st_raw(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
           b'"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', four))
put("safetensors", "not_an_object.safetensors", st_raw(b"[1, 2]  ", b""))
put("safetensors", "bad_json.safetensors", st_raw(b'{"a": {"dtype": "F32",', four))
put("safetensors", "extra_key.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "scale": 2}}, four))
put("safetensors", "metadata_not_string.safetensors",
    st_file({"__metadata__": {"epoch": 3},
             "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, four))

# --------------------------------------------------------------------------------------------
# .npy


def npy(array, version=None, fortran=False):
    f = io.BytesIO()
    if fortran:
        array = np.asfortranarray(array)
    np.lib.format.write_array(f, array, version=version, allow_pickle=True)
    return f.getvalue()


def npy_raw(header, data, version=1):
    """A .npy with a hand-written header dict, padded as numpy pads it."""
    h = header.encode("latin1")
    pre = 10 if version == 1 else 12
    h += b" " * ((64 - (pre + len(h) + 1) % 64) % 64) + b"\n"
    length = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + length + h + data


f8 = k12.reshape(3, 4)
f4 = f8.astype("<f4")
put("npy", "f4_c.npy", npy(f4))
put("npy", "f8_c.npy", npy(f8))
put("npy", "f4_fortran.npy", npy(f4, fortran=True))
put("npy", "f8_fortran.npy", npy(f8, fortran=True))
put("npy", "f4_1d.npy", npy(k12[:5].astype("<f4")))
put("npy", "f8_v2.npy", npy(f8, version=(2, 0)))
put("npy", "f4_v3.npy", npy(f4, version=(3, 0)))
put("npy", "empty_0x4.npy", npy(np.zeros((0, 4), dtype="<f4")))

put("npy", "big_endian.npy", npy(f4.astype(">f4")))
put("npy", "object.npy", npy(np.array([1.5, "two"], dtype=object)))
put("npy", "int64.npy", npy(np.arange(6, dtype="<i8")))
put("npy", "float16.npy", npy(np.arange(6, dtype="<f2")))
put("npy", "scalar.npy", npy(np.float32(1.5)))
put("npy", "rank3.npy", npy(np.zeros((2, 2, 2), dtype="<f4")))
put("npy", "rank4.npy", npy(np.zeros((2, 2, 2, 2), dtype="<f4")))
put("npy", "sequence_fortran.npy", npy(np.arange(24, dtype="<f8").reshape(2, 3, 4), fortran=True))
put("npy", "structured.npy", npy(np.zeros(2, dtype=[("a", "<f4"), ("b", "<f4")])))
put("npy", "truncated.npy", npy(f4)[:-5])
put("npy", "extra_bytes.npy", npy(f4) + b"\x00" * 8)
nan_f8 = f8.copy()
nan_f8[2, 1] = np.nan
put("npy", "nan.npy", npy(nan_f8))
inf_f4 = f4.copy()
inf_f4[1, 3] = -np.inf
put("npy", "inf_fortran.npy", npy(inf_f4, fortran=True))
put("npy", "shape_overflow.npy",
    npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
            b"\x00" * 16))
put("npy", "unknown_key.npy",
    npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'eval': 'x', }",
            b"\x00" * 8))
put("npy", "python_call.npy",
    npy_raw("{'descr': '<f4', 'fortran_order': __import__('os'), 'shape': (2,), }", b"\x00" * 8))
put("npy", "header_past_end.npy", b"\x93NUMPY\x01\x00\xff\x7f{'descr': '<f4'")
put("npy", "not_npy.npy", b"0.5,1.5\n2.5,3.5\n")

# --------------------------------------------------------------------------------------------
# CSV

put("csv", "with_header.csv", b"x0,x1,x2\n0.5,-1.25,3e-2\n+4,5.,.5\n")
# CRLF line ends, a byte-order mark, spaces around fields and a blank line in the middle.
put("csv", "no_header.csv", b"\xef\xbb\xbf1, 2\r\n3 ,4\r\n\r\n-5e-3,6\r\n")
put("csv", "ragged.csv", b"a,b,c\n1,2,3\n4,5\n")
put("csv", "non_number.csv", b"1,2\n3,4\n5,abc\n")
put("csv", "nan.csv", b"1,2\n3,nan\n")
put("csv", "empty_field.csv", b"1,2,3\n4,,6\n")
put("csv", "only_header.csv", b"a,b\n")
put("csv", "out_of_range.csv", b"1\n1e999\n")
