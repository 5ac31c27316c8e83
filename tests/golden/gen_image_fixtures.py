#!/usr/bin/env python3
"""Writes the image fixtures used by tests/test_image.cpp, with real TensorFlow and Pillow as the
independent references:

  tests/data/images/     good JPEGs (RGB, grayscale, Adobe CMYK, progressive) and, for each, the
                         pixels tf.io.decode_jpeg(channels=3) returns with its default DCT (.tf.npy)
                         and with dct_method="INTEGER_ACCURATE" (.tf_accurate.npy)
  tests/data/bad_images/ damaged or hostile files the JPEG reader must reject with a clear error
  tests/data/resize/     uint8 inputs and tf.image.resize(method="bilinear", antialias=False) outputs
                         (float32 .npy) plus manifest.json describing each case

Re-run from the repository root:  python3 tests/golden/gen_image_fixtures.py
Requires: tensorflow, numpy, pillow. Output is deterministic (fixed seeds).
"""
import io
import json
import os
import struct

import numpy as np
import tensorflow as tf
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
GOOD = os.path.join(ROOT, "images")
BAD = os.path.join(ROOT, "bad_images")
RESIZE = os.path.join(ROOT, "resize")


def test_pattern(height, width, channels, seed):
    """Smooth gradients, a hard edge and mild noise: JPEG-friendly yet not trivial."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = []
    for c in range(channels):
        plane = 128 + 90 * np.sin(x / (3.0 + c) + y / (5.0 + 2 * c))
        plane += np.where(x > width / 2, 40 - 25 * c, -30 + 10 * c)
        plane += rng.normal(0, 6, size=plane.shape)
        planes.append(plane)
    return np.clip(np.stack(planes, axis=-1), 0, 255).round().astype(np.uint8)


def jpeg_bytes(array, mode, **save_args):
    buffer = io.BytesIO()
    Image.fromarray(array if mode != "L" else array[..., 0], mode).save(buffer, "JPEG", **save_args)
    return buffer.getvalue()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def without_adobe_marker(data):
    """Drops the APP14 "Adobe" segment (marker FF EE, then a big-endian length that includes itself)."""
    start = find_marker(data, 0xEE)
    assert data[start + 4:start + 9] == b"Adobe"
    length = struct.unpack(">H", data[start + 2:start + 4])[0]
    return data[:start] + data[start + 2 + length:]


def write_good_jpegs():
    os.makedirs(GOOD, exist_ok=True)
    cases = {
        # 4:2:0 chroma subsampling with sizes that are not multiples of the 16-px MCU.
        "rgb_37x45.jpg": jpeg_bytes(test_pattern(37, 45, 3, 1), "RGB", quality=85),
        "rgb_444_20x16.jpg": jpeg_bytes(test_pattern(20, 16, 3, 2), "RGB", quality=95, subsampling=0),
        "progressive_33x29.jpg": jpeg_bytes(test_pattern(33, 29, 3, 3), "RGB", quality=80, progressive=True),
        "gray_23x31.jpg": jpeg_bytes(test_pattern(23, 31, 1, 4), "L", quality=90),
        # Pillow writes CMYK with an Adobe APP14 marker and inverted ink values, like Photoshop.
        "cmyk_adobe_21x19.jpg": jpeg_bytes(test_pattern(21, 19, 4, 5), "CMYK", quality=90),
        # The same kind of file without its Adobe marker: decoders then take the inks as not inverted.
        "cmyk_plain_21x19.jpg": without_adobe_marker(jpeg_bytes(test_pattern(21, 19, 4, 9), "CMYK", quality=90)),
    }
    for name, data in cases.items():
        write(os.path.join(GOOD, name), data)
        # TF's default DCT is INTEGER_FAST (libjpeg's JDCT_IFAST); keep the accurate one too.
        decoded = tf.io.decode_jpeg(data, channels=3).numpy()
        np.save(os.path.join(GOOD, name.replace(".jpg", ".tf.npy")), decoded)
        accurate = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
        np.save(os.path.join(GOOD, name.replace(".jpg", ".tf_accurate.npy")), accurate)


def find_marker(data, marker):
    index = data.find(bytes([0xFF, marker]))
    assert index >= 0, f"marker {marker:#x} not found"
    return index


def with_frame_size(data, height, width):
    """Rewrites the SOF0 frame header's height and width fields (big-endian, after the precision byte)."""
    sof = find_marker(data, 0xC0)
    patched = bytearray(data)
    patched[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(patched)


def write_bad_images():
    os.makedirs(BAD, exist_ok=True)
    base = jpeg_bytes(test_pattern(48, 64, 3, 6), "RGB", quality=90)
    scan = find_marker(base, 0xDA)
    write(os.path.join(BAD, "truncated.jpg"), base[: scan + (len(base) - scan) // 2])

    # Stamp a run of 0xFF bytes into the middle of the entropy-coded scan: they are not a valid
    # byte-stuffed sequence, so libjpeg reports corrupt data instead of silently decoding garbage.
    corrupted = bytearray(base)
    middle = scan + (len(base) - scan) // 2
    corrupted[middle:middle + 12] = bytes([0xFF, 0xD3] * 6)
    write(os.path.join(BAD, "corrupt_middle.jpg"), bytes(corrupted))

    write(os.path.join(BAD, "text.jpg"), b"this is a text file, not a picture\n")
    write(os.path.join(BAD, "empty.jpg"), b"")
    png = io.BytesIO()
    Image.fromarray(test_pattern(8, 8, 3, 7), "RGB").save(png, "PNG")
    write(os.path.join(BAD, "png_named.jpg"), png.getvalue())
    small = jpeg_bytes(test_pattern(10, 16, 3, 8), "RGB", quality=90)
    write(os.path.join(BAD, "huge_30000x10.jpg"), with_frame_size(small, 10, 30000))
    write(os.path.join(BAD, "zero_height.jpg"), with_frame_size(small, 0, 16))


def write_resize_cases():
    os.makedirs(RESIZE, exist_ok=True)
    # (input height, width, output height, width, stride): the stride samples every stride-th output
    # row and column so that the large 299x299 case stays small on disk.
    cases = [
        (7, 5, 3, 4, 1),      # downscale, non-integer ratios
        (7, 5, 20, 11, 1),    # upscale, non-integer ratios
        (6, 8, 12, 16, 1),    # exact 2x
        (9, 9, 9, 9, 1),      # identity size
        (5, 6, 1, 1, 1),      # single output pixel
        (1, 7, 4, 3, 1),      # single input row
        (13, 17, 5, 29, 1),   # mixed down / up
        (128, 96, 299, 299, 4),   # the encoder's input size from a 128-ish image
        (180, 240, 127, 131, 3),  # downscale by non-integer ratios
    ]
    manifest = []
    for i, (in_h, in_w, out_h, out_w, stride) in enumerate(cases):
        source = np.random.default_rng(100 + i).integers(0, 256, size=(in_h, in_w, 3), dtype=np.uint8)
        resized = tf.image.resize(source, (out_h, out_w), method="bilinear", antialias=False).numpy()
        assert resized.dtype == np.float32
        sampled = np.ascontiguousarray(resized[::stride, ::stride, :])
        stem = f"case{i}_{in_h}x{in_w}_to_{out_h}x{out_w}"
        np.save(os.path.join(RESIZE, stem + ".in.npy"), source)
        np.save(os.path.join(RESIZE, stem + ".out.npy"), sampled)
        manifest.append({"input": stem + ".in.npy", "expected": stem + ".out.npy",
                         "out_height": out_h, "out_width": out_w, "stride": stride})
    # The encoder's preprocessing: resize then inception_resnet_v2.preprocess_input ("tf" mode).
    source = np.random.default_rng(7).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    resized = tf.image.resize(source, (23, 23), method="bilinear", antialias=False)
    inception = tf.keras.applications.inception_resnet_v2.preprocess_input(resized.numpy().copy())
    np.save(os.path.join(RESIZE, "preprocess.in.npy"), source)
    np.save(os.path.join(RESIZE, "preprocess_inception_23.out.npy"), inception.astype(np.float32))
    np.save(os.path.join(RESIZE, "preprocess_unit_23.out.npy"), (resized / 255.0).numpy().astype(np.float32))
    with open(os.path.join(RESIZE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write_good_jpegs()
    write_bad_images()
    write_resize_cases()
    print("fixtures written under", os.path.normpath(ROOT))
