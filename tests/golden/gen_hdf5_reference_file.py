#!/usr/bin/env python3
"""An HDF5 file written by h5py/numpy, for tests/test_hdf5.cpp: every dtype and string flavour
the C++ wrapper must read, and numpy's float16 rounding as the reference for ours.

Writes tests/data/hdf5/h5py_reference.h5. Most values follow simple formulas that the C++ test
recomputes; where numpy is the reference (float16 conversion, float64 -> float32 rounding) the
file stores numpy's answer next to the input.

Contents (dataset paths; attributes listed at the end):
  float16/values, float16/big_endian   special half values, '<f2' and '>f2'
  float16/as_float32                   numpy's float16 -> float32 of float16/values
  half_rounding/input                  float32 values that are hard to round to half
  half_rounding/expected_bits          numpy: input.astype(float16).view(uint16)
  half_rounding/expected_back          numpy: that float16 converted back to float32
  float32/matrix      (3, 4)  0.25 * i - 1  (i = row-major index)
  float32/big_endian  (3, 4)  same values stored '>f4'
  float64/values                      doubles that round when narrowed; float64/as_float32 numpy's
  int8 ... uint64 /bounds              the type's min, -1 (signed) or 1, 0, max
  int64/too_big_for_int32, int32/negative, uint64/too_big_for_int64   for range errors
  bool/flags                           h5py bool (an HDF5 enum): not numeric for the wrapper
  strings/fixed                        numpy 'S5' array  [b"alpha", b"be", b""]
  strings/vlen_utf8                    ["naïve", "café ✓", ""]
  strings/scalar_vlen                  scalar "just one"
  compressed/gzip_shuffle (200, 7) float32 = i * 0.5 (row-major index), chunks (16, 7), gzip 4
  compressed/gzip_float16 (50, 4)  float16 = (i % 97) * 0.125, chunks (8, 4), gzip 9
  rows/int16 (6, 2) = 10 * r + c
  scalar/pi  float64 scalar math.pi
  empty/rows float32 shape (0, 3)
  attributes on group /attrs:
    fixed_nullpad   np.bytes_ scalar "fixed value"       (fixed length, NULLPAD, ASCII)
    fixed_nullterm  "null terminated"  fixed length 20, NULLTERM   (low-level h5py API)
    fixed_spacepad  "space padded"     fixed length 20, SPACEPAD
    fixed_utf8      "Grüße"            fixed length, UTF-8
    vlen_ascii      b"vlen ascii"      variable length, ASCII
    vlen_utf8       "naïve café ✓"     variable length, UTF-8
    fixed_array     [b"one", b"three", b""]          fixed, 1-D
    vlen_array      ["α", "β γ", ""]                 variable length UTF-8, 1-D
    vlen_ascii_array [b"x", b"yy"]                   variable length ASCII, 1-D
    one_element_array  [b"lonely"]
    empty_float_array  float64 shape (0,)  (what tf_keras writes for "no weight names")
    matrix_strings  2-D fixed strings (2, 2)
    int64  1234567890123456789 ; int32 -7 ; uint8 200 ; double 0.1 ; float32 0.1f
    int_array  [1, 2, 3]
  attribute on the dataset float32/matrix: units = "metres"; on the root: created_by = "h5py"

Usage: python3 tests/golden/gen_hdf5_reference_file.py   (numpy, h5py)
"""

import math
import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "data", "hdf5", "h5py_reference.h5"))


def fixed_string_attr(obj, name, text, length, pad):
    """A scalar fixed-length ASCII string attribute with the given padding (h5py's high-level API
    always writes NULLPAD)."""
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(length)
    string_type.set_strpad(pad)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    attribute = h5py.h5a.create(obj.id, name.encode(), string_type, space)
    raw = text.encode("ascii")
    if pad == h5py.h5t.STR_SPACEPAD:
        raw = raw.ljust(length, b" ")
    attribute.write(np.array(raw, dtype=f"S{length}"))


def half_rounding_inputs():
    f32 = np.float32
    special = [
        0.0, -0.0, 1.0, -1.0, 65504.0, 65519.99, 65520.0, 1e10, -1e10, np.inf, -np.inf, np.nan,
        1.0 + 2.0 ** -11,          # tie between 1 and 1 + 2^-10: rounds to even (1)
        1.0 + 3 * 2.0 ** -11,      # tie: rounds to even (1 + 2^-9)
        1.0 + 2.0 ** -11 + 2.0 ** -20,  # just above the tie: rounds up
        2.0 ** -14,                # smallest normal half
        2.0 ** -14 - 2.0 ** -25,   # just below it: subnormal, rounds up into the normal
        2.0 ** -24,                # smallest subnormal half
        2.0 ** -25,                # tie between 0 and 2^-24: rounds to even (0)
        3 * 2.0 ** -25,            # tie between 2^-24 and 2^-23: rounds to even (2^-23)
        2.0 ** -25 + 2.0 ** -40,   # just above the tie: 2^-24
        2.0 ** -26, 1e-30, 1e-45, -1e-45,  # underflow to (signed) zero
        0.1, 1.0 / 3.0, 2.0 / 3.0, 1000.1, -7.75, 4095.5, 2049.0, 2051.0,
    ]
    rng = np.random.default_rng(7)
    magnitudes = np.exp(rng.uniform(np.log(1e-9), np.log(1e6), 600))
    signs = rng.choice([-1.0, 1.0], 600)
    return np.concatenate([np.array(special, dtype=f32), (magnitudes * signs).astype(f32)])


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with h5py.File(OUT, "w", libver=("v108", "v108")) as f:
        f.attrs["created_by"] = np.bytes_(b"h5py")

        halves = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 2.0 ** -14, 2.0 ** -24,
                           3 * 2.0 ** -24, 1.0 / 3.0, np.inf, -np.inf, np.nan], dtype=np.float16)
        f["float16/values"] = halves
        f["float16/big_endian"] = halves.astype(">f2")
        f["float16/as_float32"] = halves.astype(np.float32)

        inputs = half_rounding_inputs()
        with np.errstate(over="ignore"):
            as_half = inputs.astype(np.float16)
        f["half_rounding/input"] = inputs
        f["half_rounding/expected_bits"] = as_half.view(np.uint16)
        f["half_rounding/expected_back"] = as_half.astype(np.float32)

        matrix = (0.25 * np.arange(12) - 1.0).astype(np.float32).reshape(3, 4)
        f["float32/matrix"] = matrix
        f["float32/matrix"].attrs["units"] = np.bytes_(b"metres")
        f["float32/big_endian"] = matrix.astype(">f4")

        doubles = np.array([0.1, 1.0 / 3.0, 1e-40, 3.4e38, 1e300, -2.0 ** -149, 123456789.123])
        f["float64/values"] = doubles
        with np.errstate(over="ignore"):
            f["float64/as_float32"] = doubles.astype(np.float32)

        for dtype in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                      np.uint64):
            info = np.iinfo(dtype)
            middle = -1 if info.min < 0 else 1
            f[f"{np.dtype(dtype).name}/bounds"] = np.array([info.min, middle, 0, info.max],
                                                           dtype=dtype)
        f["int64/too_big_for_int32"] = np.array([1, 2 ** 31], dtype=np.int64)
        f["int32/negative"] = np.array([5, -1], dtype=np.int32)
        f["uint64/too_big_for_int64"] = np.array([1, 2 ** 63], dtype=np.uint64)
        f["bool/flags"] = np.array([True, False])

        f["strings/fixed"] = np.array([b"alpha", b"be", b""])
        f["strings/vlen_utf8"] = np.array(["naïve", "café ✓", ""], dtype=h5py.string_dtype())
        f.create_dataset("strings/scalar_vlen", data="just one", dtype=h5py.string_dtype())

        f.create_dataset("compressed/gzip_shuffle",
                         data=(0.5 * np.arange(200 * 7)).astype(np.float32).reshape(200, 7),
                         chunks=(16, 7), compression="gzip", compression_opts=4, shuffle=True)
        f.create_dataset("compressed/gzip_float16",
                         data=((np.arange(50 * 4) % 97) * 0.125).astype(np.float16).reshape(50, 4),
                         chunks=(8, 4), compression="gzip", compression_opts=9)
        f["rows/int16"] = (10 * np.arange(6)[:, None] + np.arange(2)[None, :]).astype(np.int16)
        f["scalar/pi"] = np.float64(math.pi)
        f["empty/rows"] = np.zeros((0, 3), dtype=np.float32)

        attrs = f.create_group("attrs")
        attrs.attrs["fixed_nullpad"] = np.bytes_(b"fixed value")
        fixed_string_attr(attrs, "fixed_nullterm", "null terminated", 20, h5py.h5t.STR_NULLTERM)
        fixed_string_attr(attrs, "fixed_spacepad", "space padded", 20, h5py.h5t.STR_SPACEPAD)
        attrs.attrs.create("fixed_utf8", "Grüße".encode("utf-8"),
                           dtype=h5py.string_dtype("utf-8", len("Grüße".encode("utf-8"))))
        attrs.attrs["vlen_ascii"] = b"vlen ascii"
        attrs.attrs["vlen_utf8"] = "naïve café ✓"
        attrs.attrs["fixed_array"] = np.array([b"one", b"three", b""])
        attrs.attrs["vlen_array"] = np.array(["α", "β γ", ""], dtype=h5py.string_dtype())
        attrs.attrs["vlen_ascii_array"] = np.array([b"x", b"yy"],
                                                   dtype=h5py.string_dtype("ascii"))
        attrs.attrs["one_element_array"] = np.array([b"lonely"])
        attrs.attrs["empty_float_array"] = np.zeros((0,), dtype=np.float64)
        attrs.attrs["matrix_strings"] = np.array([[b"a", b"b"], [b"c", b"d"]])
        attrs.attrs["int64"] = np.int64(1234567890123456789)
        attrs.attrs["int32"] = np.int32(-7)
        attrs.attrs["uint8"] = np.uint8(200)
        attrs.attrs["double"] = np.float64(0.1)
        attrs.attrs["float32"] = np.float32(0.1)
        attrs.attrs["int_array"] = np.array([1, 2, 3], dtype=np.int64)

    # Check that h5py wrote the string flavours the C++ test claims to cover.
    with h5py.File(OUT, "r") as f:
        a = f["attrs"]

        def string_info(name):
            t = a.attrs.get_id(name).get_type()
            return t.is_variable_str(), t.get_cset(), (None if t.is_variable_str()
                                                       else t.get_strpad())

        assert string_info("fixed_nullpad") == (False, h5py.h5t.CSET_ASCII, h5py.h5t.STR_NULLPAD)
        assert string_info("fixed_nullterm")[2] == h5py.h5t.STR_NULLTERM
        assert string_info("fixed_spacepad")[2] == h5py.h5t.STR_SPACEPAD
        assert string_info("fixed_utf8")[:2] == (False, h5py.h5t.CSET_UTF8)
        assert string_info("vlen_ascii")[:2] == (True, h5py.h5t.CSET_ASCII)
        assert string_info("vlen_utf8")[:2] == (True, h5py.h5t.CSET_UTF8)
        assert string_info("vlen_ascii_array")[:2] == (True, h5py.h5t.CSET_ASCII)
        assert f["strings/fixed"].dtype.kind == "S"
    print(f"{os.path.getsize(OUT):8d}  {os.path.relpath(OUT, HERE)}")


if __name__ == "__main__":
    main()
