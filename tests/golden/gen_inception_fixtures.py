#!/usr/bin/env python3
"""Inception-ResNet-v2 fixtures for the C++ encoder (models/inception_resnet_v2.h), by REAL Keras.

`build_irv2(config)` builds, with Keras layers, the network of
keras/src/applications/inception_resnet_v2.py parameterised like the C++ `InceptionConfig`
(image_size, width_divisor, repeats_block35/17/8, valid_reductions). `--check-against-keras`
proves it faithful: at the full config it has keras.applications' parameter count and layer
names, and with the same weights it gives the same output.

Writes into tests/data/inception/ (all weights seeded random, identical in every file):
  tiny_model.h5                   tf_keras save_weights() (Keras 2 legacy HDF5) of the "tiny"
                                  config; automatic names conv2d, conv2d_1, ..., block35_1_conv
  tiny_model.weights.h5           keras 3 save_weights() of the same model
  tiny_io.h5                      input [2,128,128,3] in [-1, 1] and the output [2,4,4,192]
  reduced_valid_io.h5             the "reduced_valid" config (VALID reductions, 99x99 input):
                                  input [2,99,99,3] and output [2,1,1,192], computed with the SAME
                                  weights as tiny_model.h5 (padding changes no weight shape, so
                                  the tiny weight files fill this encoder too)
  tiny_slim_names.h5              h5py imitation of the official ImageNet file (TF-slim names,
                                  fixed-length byte strings) holding the tiny weights with the
                                  layers in CREATION order
  tiny_slim_names_keras_order.h5  the same with layer_names in the order the official file really
                                  has: Keras's model.layers (topological) order, the order Keras's
                                  own legacy loader pairs by position (verified: keras 3 loads it)
  twice_model.h5                  tf_keras save_weights() of the "twice" config (64x64, width
  twice_model.weights.h5          divisor 32, 2/2/2 repeats) and keras 3 save_weights(), both of
                                  the SECOND model built in one session: automatic names offset
                                  (conv2d_51, ...); Keras loads them into a fresh model by structure
  twice_io.h5                     input [2,64,64,3] and Keras's output [2,2,2,48] for them
  twice_truncated.h5              twice_model.h5 without its last two layers with weights (Keras
                                  refuses it, and each config's files in the other's model)
  full_layer_order.json           keras.applications.InceptionResNetV2's layers with weights in
                                  model.layers order (names only)
  tiny_broken.h5                  tiny_model.h5's layout (same names and order) with two kernels
                                  of the wrong shape and one layer missing (root attribute
                                  `broken` says which); its datasets hold no data, so they read as
                                  0.0 (an import must reject the file before using any value)

After writing, the files are re-read with h5py alone (as io/keras_weights.cpp reads them) and
the outputs recomputed by NumpyEncoder, a float64 numpy transcription of
models/inception_resnet_v2.cpp (same units, names and forward), from tiny_model.h5's weights.

Options:
  --verify                only that check, on the files already in --out
  --check-against-keras   compare build_irv2(full) with keras.applications.InceptionResNetV2 at
                          139x139 (about a minute on 2 cores) and exit; writes nothing
  --full DIR              also write the full-size network (keras.applications, seeded weights):
                          DIR/full_model.h5 (tf_keras legacy), DIR/full_model.weights.h5 (keras 3),
                          DIR/full_io.h5 (input [1,299,299,3], output [1,8,8,1536]); not committed
  --out DIR               write the committed fixtures somewhere else (default tests/data/inception)

Usage:  python3 tests/golden/gen_inception_fixtures.py   (~30 s of CPU; versions in
        tests/golden/requirements.txt). Reruns give byte-identical files (checked with the
        pinned versions); --full takes about a minute more and writes ~440 MB.
"""

import argparse
import json
import os
import re
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402
import tf_keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "data", "inception"))

# Field names as in the C++ InceptionConfig.
TINY = dict(image_size=128, width_divisor=8, repeats_block35=1, repeats_block17=1,
            repeats_block8=1, valid_reductions=False)
REDUCED_VALID = dict(TINY, image_size=99, valid_reductions=True)
# A notebook that built the model twice: narrower still, but 2 repeats of each residual block so
# that Keras's layer order across repeated blocks is exercised too.
TWICE = dict(image_size=64, width_divisor=32, repeats_block35=2, repeats_block17=2,
             repeats_block8=2, valid_reductions=False)
FULL = dict(image_size=299, width_divisor=1, repeats_block35=10, repeats_block17=20,
            repeats_block8=10, valid_reductions=True)
FULL_PARAMETERS = 54_336_736  # keras.applications.InceptionResNetV2(include_top=False)


# --------------------------------------------------------------------------------------------
# The network


def scaled_filters(keras_filters, divisor):
    """The C++ InceptionResNetV2::f: max(4, std::lround(keras_filters / divisor)).

    std::lround rounds halves away from zero; Python's round() rounds them to even, so use the
    exact integer form floor((2k + d) / 2d) instead."""
    if divisor == 1:
        return keras_filters
    return max(4, (2 * keras_filters + divisor) // (2 * divisor))


def conv_output_size(size, kernel, stride, padding):
    """Keras: VALID floor((n - k) / s) + 1, SAME ceil(n / s)."""
    if padding == "valid":
        return (size - kernel) // stride + 1
    return -(-size // stride)


def stage_sizes(config):
    """Spatial size after each stage, computed from the padding rules alone."""
    red = "valid" if config["valid_reductions"] else "same"
    s = config["image_size"]
    s = conv_output_size(s, 3, 2, red)   # conv 32 3/2
    s = conv_output_size(s, 3, 1, red)   # conv 32 3x3
    s = conv_output_size(s, 3, 2, red)   # max-pool 3/2 (conv 64 and conv 80 keep the size)
    s = conv_output_size(s, 3, 1, red)   # conv 192 3x3
    stem = conv_output_size(s, 3, 2, red)  # max-pool 3/2
    block17 = conv_output_size(stem, 3, 2, red)
    block8 = conv_output_size(block17, 3, 2, red)
    return dict(block35=stem, block17=block17, block8=block8)


class _Builder:
    """Creates the layers in exactly the order keras.applications does, recording per layer its
    TF-slim name (the naming of the official ImageNet file) and per conv2d_bn its layers."""

    def __init__(self, config, k):
        self.config = config
        self.layers = k.layers
        self.red = "valid" if config["valid_reductions"] else "same"
        self.units = []        # per conv2d_bn, in creation order: dict(conv, bn, slim)
        self.created = []      # every layer in creation order
        self.slim_names = {}   # Keras layer name -> TF-slim name

    def f(self, keras_filters):
        return scaled_filters(keras_filters, self.config["width_divisor"])

    def apply(self, layer, slim_name, inputs):
        self.created.append(layer)
        self.slim_names[layer.name] = slim_name
        return layer(inputs)

    def conv2d_bn(self, x, filters, kernel, slim, strides=1, padding="same", activation=True,
                  use_bias=False, name=None):
        L = self.layers
        conv = L.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=use_bias,
                        name=name)
        x = self.apply(conv, slim, x)
        bn = None
        if not use_bias:
            bn = L.BatchNormalization(axis=3, scale=False, epsilon=1e-3,
                                      name=None if name is None else name + "_bn")
            x = self.apply(bn, slim + "_BatchNorm", x)
        if activation:
            act = L.Activation("relu", name=None if name is None else name + "_ac")
            x = self.apply(act, slim + "_Activation", x)
        self.units.append(dict(conv=conv, bn=bn, slim=slim))
        return x

    def residual_block(self, x, block_type, block_idx, scale, activation):
        f, L = self.f, self.layers
        slim = f"{block_type.capitalize()}_{block_idx}"  # Block35_1, Block17_1, Block8_1
        name = f"{block_type}_{block_idx}"

        def branch(index, text):
            return f"{slim}_Branch_{index}_{text}"

        if block_type == "block35":
            b0 = self.conv2d_bn(x, f(32), 1, branch(0, "Conv2d_1x1"))
            b1 = self.conv2d_bn(x, f(32), 1, branch(1, "Conv2d_0a_1x1"))
            b1 = self.conv2d_bn(b1, f(32), 3, branch(1, "Conv2d_0b_3x3"))
            b2 = self.conv2d_bn(x, f(32), 1, branch(2, "Conv2d_0a_1x1"))
            b2 = self.conv2d_bn(b2, f(48), 3, branch(2, "Conv2d_0b_3x3"))
            b2 = self.conv2d_bn(b2, f(64), 3, branch(2, "Conv2d_0c_3x3"))
            branches = [b0, b1, b2]
        elif block_type == "block17":
            b0 = self.conv2d_bn(x, f(192), 1, branch(0, "Conv2d_1x1"))
            b1 = self.conv2d_bn(x, f(128), 1, branch(1, "Conv2d_0a_1x1"))
            b1 = self.conv2d_bn(b1, f(160), (1, 7), branch(1, "Conv2d_0b_1x7"))
            b1 = self.conv2d_bn(b1, f(192), (7, 1), branch(1, "Conv2d_0c_7x1"))
            branches = [b0, b1]
        else:
            b0 = self.conv2d_bn(x, f(192), 1, branch(0, "Conv2d_1x1"))
            b1 = self.conv2d_bn(x, f(192), 1, branch(1, "Conv2d_0a_1x1"))
            b1 = self.conv2d_bn(b1, f(224), (1, 3), branch(1, "Conv2d_0b_1x3"))
            b1 = self.conv2d_bn(b1, f(256), (3, 1), branch(1, "Conv2d_0c_3x1"))
            branches = [b0, b1]
        mixed = self.apply(L.Concatenate(axis=3, name=f"{name}_mixed"), f"{slim}_Concatenate",
                           branches)
        up = self.conv2d_bn(mixed, x.shape[3], 1, f"{slim}_Conv2d_1x1", activation=False,
                            use_bias=True, name=f"{name}_conv")
        # keras.applications uses its CustomScaleLayer (keras 3) or this Lambda (tf_keras); the
        # arithmetic is the same: x + up * scale.
        summed = L.Lambda(lambda t, scale: t[0] + t[1] * scale, arguments={"scale": scale},
                          name=name)
        x = self.apply(summed, f"{slim}_ScaleSum", [x, up])
        if activation:
            x = self.apply(L.Activation("relu", name=f"{name}_ac"), f"{slim}_Activation", x)
        return x

    def build(self, k):
        f, L, red = self.f, self.layers, self.red
        c = self.config
        size = c["image_size"]
        image = k.Input(shape=(size, size, 3))
        self.created.append(None)  # placeholder: the input layer is named below
        x = self.conv2d_bn(image, f(32), 3, "Conv2d_1a_3x3", strides=2, padding=red)
        x = self.conv2d_bn(x, f(32), 3, "Conv2d_2a_3x3", padding=red)
        x = self.conv2d_bn(x, f(64), 3, "Conv2d_2b_3x3")
        x = self.apply(L.MaxPooling2D(3, strides=2, padding=red), "MaxPool_3a_3x3", x)
        x = self.conv2d_bn(x, f(80), 1, "Conv2d_3b_1x1", padding=red)
        x = self.conv2d_bn(x, f(192), 3, "Conv2d_4a_3x3", padding=red)
        x = self.apply(L.MaxPooling2D(3, strides=2, padding=red), "MaxPool_5a_3x3", x)

        b0 = self.conv2d_bn(x, f(96), 1, "Mixed_5b_Branch_0_Conv2d_1x1")
        b1 = self.conv2d_bn(x, f(48), 1, "Mixed_5b_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv2d_bn(b1, f(64), 5, "Mixed_5b_Branch_1_Conv2d_0b_5x5")
        b2 = self.conv2d_bn(x, f(64), 1, "Mixed_5b_Branch_2_Conv2d_0a_1x1")
        b2 = self.conv2d_bn(b2, f(96), 3, "Mixed_5b_Branch_2_Conv2d_0b_3x3")
        b2 = self.conv2d_bn(b2, f(96), 3, "Mixed_5b_Branch_2_Conv2d_0c_3x3")
        pool = self.apply(L.AveragePooling2D(3, strides=1, padding="same"),
                          "Mixed_5b_Branch_3_AvgPool_0a_3x3", x)
        b3 = self.conv2d_bn(pool, f(64), 1, "Mixed_5b_Branch_3_Conv2d_0b_1x1")
        x = self.apply(L.Concatenate(axis=3, name="mixed_5b"), "Mixed_5b", [b0, b1, b2, b3])

        for i in range(1, c["repeats_block35"] + 1):
            x = self.residual_block(x, "block35", i, 0.17, True)

        b0 = self.conv2d_bn(x, f(384), 3, "Mixed_6a_Branch_0_Conv2d_1a_3x3", strides=2,
                            padding=red)
        b1 = self.conv2d_bn(x, f(256), 1, "Mixed_6a_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv2d_bn(b1, f(256), 3, "Mixed_6a_Branch_1_Conv2d_0b_3x3")
        b1 = self.conv2d_bn(b1, f(384), 3, "Mixed_6a_Branch_1_Conv2d_1a_3x3", strides=2,
                            padding=red)
        pool = self.apply(L.MaxPooling2D(3, strides=2, padding=red),
                          "Mixed_6a_Branch_2_MaxPool_1a_3x3", x)
        x = self.apply(L.Concatenate(axis=3, name="mixed_6a"), "Mixed_6a", [b0, b1, pool])

        for i in range(1, c["repeats_block17"] + 1):
            x = self.residual_block(x, "block17", i, 0.10, True)

        b0 = self.conv2d_bn(x, f(256), 1, "Mixed_7a_Branch_0_Conv2d_0a_1x1")
        b0 = self.conv2d_bn(b0, f(384), 3, "Mixed_7a_Branch_0_Conv2d_1a_3x3", strides=2,
                            padding=red)
        b1 = self.conv2d_bn(x, f(256), 1, "Mixed_7a_Branch_1_Conv2d_0a_1x1")
        b1 = self.conv2d_bn(b1, f(288), 3, "Mixed_7a_Branch_1_Conv2d_1a_3x3", strides=2,
                            padding=red)
        b2 = self.conv2d_bn(x, f(256), 1, "Mixed_7a_Branch_2_Conv2d_0a_1x1")
        b2 = self.conv2d_bn(b2, f(288), 3, "Mixed_7a_Branch_2_Conv2d_0b_3x3")
        b2 = self.conv2d_bn(b2, f(320), 3, "Mixed_7a_Branch_2_Conv2d_1a_3x3", strides=2,
                            padding=red)
        pool = self.apply(L.MaxPooling2D(3, strides=2, padding=red),
                          "Mixed_7a_Branch_3_MaxPool_1a_3x3", x)
        x = self.apply(L.Concatenate(axis=3, name="mixed_7a"), "Mixed_7a", [b0, b1, b2, pool])

        for i in range(1, c["repeats_block8"] + 1):
            last = i == c["repeats_block8"]
            x = self.residual_block(x, "block8", i, 1.0 if last else 0.20, not last)

        x = self.conv2d_bn(x, f(1536), 1, "Conv2d_7b_1x1", name="conv_7b")
        model = k.Model(image, x, name="inception_resnet_v2")
        input_layer = model.layers[0]
        self.created[0] = input_layer
        self.slim_names[input_layer.name] = "input_1"
        return model


def build_irv2(config, k=keras):
    """Inception-ResNet-v2 (include_top=False) for `config` with Keras module `k` (keras 3 or
    tf_keras). Returns (model, builder): builder.units lists the conv2d_bn units in creation
    order, builder.created every layer in creation order, builder.slim_names the TF-slim names.
    Call k.backend.clear_session() first so automatic names start at conv2d, conv2d_1, ..."""
    builder = _Builder(config, k)
    model = builder.build(k)
    return model, builder


def expected_cpp_names(units):
    """The names the C++ encoder gives its layers, derived here from the C++ rule (counters over
    unnamed conv2d_bn units only), not from Keras: the two must agree."""
    names, conv_count, bn_count = [], 0, 0
    for unit in units:
        if unit["slim"] == "Conv2d_7b_1x1":
            names += ["conv_7b", "conv_7b_bn"]
        elif unit["conv"].use_bias:  # a residual block's up conv, e.g. Block35_1_Conv2d_1x1
            block, index = unit["slim"].split("_")[:2]
            names.append(f"{block.lower()}_{index}_conv")
        else:
            names.append("conv2d" if conv_count == 0 else f"conv2d_{conv_count}")
            names.append("batch_normalization" if bn_count == 0
                         else f"batch_normalization_{bn_count}")
            conv_count += 1
            bn_count += 1
    return names


# --------------------------------------------------------------------------------------------
# Seeded weights


def seed_for(text):
    return zlib.crc32(text.encode())


def quantized(rng_values, step):
    """Round to multiples of a power of two: exact in float32 and cheap to gzip, which keeps the
    h5py-written fixtures small."""
    return (np.round(rng_values / step) * step).astype(np.float32)


def seeded_weights(units, rng):
    """{layer name: [arrays in layer.weights order]} for every conv2d_bn unit, drawn in creation
    order. Kernels are He-scaled (std sqrt(2 / fan_in)) so that, with inference-mode BN whose
    moving variance is near 1, activations stay O(1) through the whole network."""
    weights = {}
    for unit in units:
        conv, bn = unit["conv"], unit["bn"]
        kh, kw, cin, cout = conv.kernel.shape
        std = np.sqrt(2.0 / (kh * kw * cin))
        step = 2.0 ** (np.round(np.log2(std)) - 3)
        values = [quantized(rng.standard_normal((kh, kw, cin, cout)) * std, step)]
        if conv.use_bias:
            values.append(quantized(rng.uniform(-0.05, 0.05, cout), 2.0 ** -9))
        weights[conv.name] = values
        if bn is not None:
            weights[bn.name] = [quantized(rng.uniform(-0.1, 0.1, cout), 2.0 ** -9),   # beta
                                quantized(rng.uniform(-0.1, 0.1, cout), 2.0 ** -9),   # mean
                                quantized(rng.uniform(0.5, 1.5, cout), 2.0 ** -9)]    # var
    return weights


def set_weights_by_name(model, weights):
    with_weights = [layer for layer in model.layers if layer.weights]
    assert sorted(layer.name for layer in with_weights) == sorted(weights), \
        "set_weights_by_name: layer names differ from the weight table"
    for layer in with_weights:
        layer.set_weights(weights[layer.name])


def seeded_input(rng, batch, size):
    """Values k/128 - 1, k in 0..256: spans [-1, 1] exactly like preprocessed pixels."""
    return (rng.integers(0, 257, (batch, size, size, 3)) / 128.0 - 1.0).astype(np.float32)


def run(model, x):
    return np.asarray(model(tf.constant(x), training=False), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# HDF5 writing (h5py files: HDF5 1.8 format, no timestamps, so reruns are byte-identical)


def create_h5(path):
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    return h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))


def make_group(parent, name):
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def write_dataset(group, path, value, data=True):
    """Float32 dataset at `path` below `group`, making any intermediate group without
    timestamps. Arrays over 4 KiB are gzipped (with the shuffle filter, one chunk): HDF5 undoes
    both transparently on read, and the quantized weights shrink to about a quarter. With
    data=False nothing is written and readers get the fill value 0.0."""
    *parents, leaf = path.split("/")
    for parent in parents:
        group = group[parent] if parent in group else make_group(group, parent)
    value = np.ascontiguousarray(value, dtype=np.float32)
    if not data:
        return group.create_dataset(leaf, shape=value.shape, dtype="<f4", fillvalue=0.0,
                                    track_times=False)
    if value.nbytes <= 4096:
        return group.create_dataset(leaf, data=value, dtype="<f4", track_times=False)
    return group.create_dataset(leaf, data=value, dtype="<f4", chunks=value.shape,
                                compression="gzip", compression_opts=9, shuffle=True,
                                track_times=False)


def fixed_strings(values):
    """numpy 'S' array: h5py stores it as fixed-length, null-padded ASCII strings (as the
    official file and tf_keras do)."""
    return np.array([v.encode("ascii") for v in values])


def versions():
    return dict(tensorflow_version=tf.__version__, keras_version=keras.__version__,
                tf_keras_version=tf_keras.__version__, numpy_version=np.__version__,
                h5py_version=h5py.__version__)


def write_io(path, config, x, y, note, extra_attrs=None):
    with create_h5(path) as f:
        f.attrs["config"] = json.dumps(config, sort_keys=True)
        for key, value in versions().items():
            f.attrs[key] = value
        f.attrs["note"] = note
        for key, value in (extra_attrs or {}).items():
            f.attrs[key] = value
        write_dataset(f, "input", x)
        write_dataset(f, "output", y)


def write_legacy_layers(path, layers, keras_version, extra_root_attrs=None, data=True):
    """Keras 2 legacy layout: layers = [(layer name, [(weight name, array)])] in layer_names
    order, weightless layers with an empty list; data=False leaves every dataset unwritten."""
    with create_h5(path) as f:
        f.attrs["layer_names"] = fixed_strings([name for name, _ in layers])
        f.attrs["backend"] = np.bytes_(b"tensorflow")
        f.attrs["keras_version"] = np.bytes_(keras_version.encode())
        for key, value in (extra_root_attrs or {}).items():
            f.attrs[key] = value
        for layer_name, weights in layers:
            group = make_group(f, layer_name)
            # Keras 2 wrote "no weights" as an empty list, which numpy turns into float64.
            group.attrs["weight_names"] = (fixed_strings([w for w, _ in weights]) if weights
                                           else np.zeros((0,), np.float64))
            for weight_name, value in weights:
                write_dataset(group, weight_name, value, data=data)


def read_legacy_layers(path):
    """[(layer name, [(weight name, array)])] in layer_names order, read as Keras 2 would."""
    def strings(values):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    with h5py.File(path, "r") as f:
        out = []
        for layer_name in strings(f.attrs["layer_names"]):
            group = f[layer_name]
            names = strings(group.attrs["weight_names"])
            out.append((layer_name, [(n, np.asarray(group[n])) for n in names]))
        return out


# --------------------------------------------------------------------------------------------
# Fixtures


def slim_layers(builder, weights, layer_order):
    """The tiny weights under TF-slim names: every layer of `layer_order` (Keras layer objects),
    weight names "<slim>/kernel:0", "<slim>/bias:0", "<slim>/beta:0", ..."""
    suffixes = {"Conv2D": ["kernel:0", "bias:0"],
                "BatchNormalization": ["beta:0", "moving_mean:0", "moving_variance:0"]}
    layers = []
    for layer in layer_order:
        slim = builder.slim_names[layer.name]
        values = weights.get(layer.name, [])
        names = suffixes.get(type(layer).__name__, [])[:len(values)]
        layers.append((slim, [(f"{slim}/{n}", v) for n, v in zip(names, values)]))
    return layers


def check_legacy_by_creation_order(path, config, x, expected):
    """Load a legacy file by pairing its layers with weights, in file order, to the encoder's
    layers in creation order (the C++ fallback) and run it: must give `expected`."""
    file_layers = [w for _, w in read_legacy_layers(path) if w]
    keras.backend.clear_session()
    model, builder = build_irv2(config)
    targets = [layer for layer in builder.created if layer is not None and layer.weights]
    assert len(targets) == len(file_layers), path
    for layer, file_weights in zip(targets, file_layers):
        layer.set_weights([v for _, v in file_weights])
    return float(np.max(np.abs(run(model, x) - expected)))


def make_tiny(out_dir):
    config = TINY
    rng = np.random.default_rng(seed_for("inception tiny"))
    report = {}

    keras.backend.clear_session()
    model, builder = build_irv2(config)
    assert [layer.name for layer in builder.created if layer.weights] == \
        expected_cpp_names(builder.units), "Keras names differ from the C++ naming rule"
    weights = seeded_weights(builder.units, rng)
    set_weights_by_name(model, weights)
    x = seeded_input(rng, 2, config["image_size"])
    y = run(model, x)
    grid = stage_sizes(config)["block8"]
    assert y.shape == (2, grid, grid, scaled_filters(1536, 8)), y.shape
    report["tiny parameters"] = model.count_params()
    report["tiny output rms / max"] = (float(np.sqrt(np.mean(y ** 2))), float(np.abs(y).max()))
    report["tiny fraction of zero outputs"] = float(np.mean(y == 0))

    keras3_path = os.path.join(out_dir, "tiny_model.weights.h5")
    model.save_weights(keras3_path)

    # The same network and weights in tf_keras, saved in the Keras 2 legacy format.
    tf_keras.backend.clear_session()
    legacy_model, legacy_builder = build_irv2(config, tf_keras)
    assert [layer.name for layer in legacy_builder.created if layer.weights] == \
        expected_cpp_names(legacy_builder.units)
    set_weights_by_name(legacy_model, weights)
    legacy_path = os.path.join(out_dir, "tiny_model.h5")
    legacy_model.save_weights(legacy_path)
    report["tiny: tf_keras vs keras 3 output"] = float(np.max(np.abs(run(legacy_model, x) - y)))

    # Keras's own loaders must reproduce the output from the files.
    keras.backend.clear_session()
    fresh, _ = build_irv2(config)
    fresh.load_weights(keras3_path)
    report["tiny: keras 3 reloads tiny_model.weights.h5"] = float(np.max(np.abs(run(fresh, x) - y)))
    keras.backend.clear_session()
    fresh, _ = build_irv2(config)
    fresh.load_weights(legacy_path)
    report["tiny: keras 3 legacy loader reloads tiny_model.h5"] = \
        float(np.max(np.abs(run(fresh, x) - y)))

    write_io(os.path.join(out_dir, "tiny_io.h5"), config, x, y,
             note=("InceptionConfig::tiny(): Keras inference-mode output (BN uses moving "
                   "statistics, epsilon 1e-3, no gamma) of the network whose weights are in "
                   "tiny_model.h5 / tiny_model.weights.h5 / tiny_slim_names*.h5. Input values are "
                   "k/128 - 1."),
             extra_attrs=dict(weights_files="tiny_model.h5 tiny_model.weights.h5 "
                              "tiny_slim_names.h5 tiny_slim_names_keras_order.h5",
                              parameters=np.int64(model.count_params()),
                              stage_sizes=json.dumps(stage_sizes(config), sort_keys=True)))

    # TF-slim names: creation order, and the official file's (Keras model.layers) order.
    slim_path = os.path.join(out_dir, "tiny_slim_names.h5")
    write_legacy_layers(slim_path, slim_layers(builder, weights, builder.created), "2.1.5")
    report["tiny_slim_names.h5 by creation order"] = \
        check_legacy_by_creation_order(slim_path, config, x, y)

    ordered_path = os.path.join(out_dir, "tiny_slim_names_keras_order.h5")
    write_legacy_layers(ordered_path, slim_layers(builder, weights, model.layers), "2.1.5")
    keras.backend.clear_session()
    fresh, _ = build_irv2(config)
    fresh.load_weights(ordered_path)  # Keras 3's legacy loader: by position in model.layers
    report["tiny_slim_names_keras_order.h5 reloaded by keras 3 load_weights"] = \
        float(np.max(np.abs(run(fresh, x) - y)))
    try:
        keras.backend.clear_session()
        fresh, _ = build_irv2(config)
        fresh.load_weights(slim_path)
        report["keras 3 load_weights(tiny_slim_names.h5)"] = \
            f"loads, output differs by {float(np.max(np.abs(run(fresh, x) - y))):.3g}"
    except ValueError as error:
        report["keras 3 load_weights(tiny_slim_names.h5)"] = \
            "rejected: " + str(error).splitlines()[0][:100]

    report.update(make_broken(out_dir, legacy_path))
    check_report(report, y)
    return weights, report


def check_report(report, y):
    """Every reload must be exact; tf_keras and keras 3 may differ by float32 rounding only."""
    for key, value in report.items():
        if "reload" in key or "by creation order" in key:
            assert value == 0.0, f"{key}: {value}"
        if "tf_keras vs keras 3" in key:
            assert value <= 1e-5 * max(1.0, float(np.abs(y).max())), f"{key}: {value}"


BROKEN = dict(
    wrong_shape={"conv2d_4": "kernel (3,3,10,24) stored as (3,3,24,10): input and output "
                             "channels swapped",
                 "block17_1_conv": "kernel (1,1,48,136) stored as (1,1,48,135): one output "
                                   "channel short (its bias is still (136,))"},
    missing_layer={"batch_normalization_7": "absent from layer_names and no group"},
)


def make_broken(out_dir, legacy_path):
    layers = read_legacy_layers(legacy_path)
    with h5py.File(legacy_path, "r") as f:
        keras_version = f.attrs["keras_version"]
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) \
            else str(keras_version)
    broken = []
    for layer_name, weights in layers:
        if layer_name in BROKEN["missing_layer"]:
            continue
        if layer_name == "conv2d_4":
            weights = [(n, np.ascontiguousarray(v.transpose(0, 1, 3, 2)) if "kernel" in n else v)
                       for n, v in weights]
        if layer_name == "block17_1_conv":
            weights = [(n, v[..., :-1] if "kernel" in n else v) for n, v in weights]
        broken.append((layer_name, weights))
    path = os.path.join(out_dir, "tiny_broken.h5")
    write_legacy_layers(path, broken, keras_version,
                        extra_root_attrs={"broken": json.dumps(BROKEN, sort_keys=True)},
                        data=False)
    shapes = {n: v.shape for name, w in read_legacy_layers(path) for n, v in w
              if name in BROKEN["wrong_shape"]}
    assert shapes["conv2d_4/kernel:0"] == (3, 3, 24, 10), shapes
    assert shapes["block17_1_conv/kernel:0"] == (1, 1, 48, 135), shapes
    return {"tiny_broken.h5 wrong shapes": {k: list(v) for k, v in shapes.items()}}


def make_twice(out_dir, tiny_dir):
    """Files saved after building the network twice in one session, so every automatic name is
    offset (conv2d_N starts where the first model's left off); Keras's own loaders still load them
    into a freshly built model (checked here): they pair layers by structure, not by name. Also a
    truncated file, and checks that Keras refuses the files of the other config (tiny files into
    this model, these into the tiny model), which the C++ import must refuse too."""
    config = TWICE
    rng = np.random.default_rng(seed_for("inception twice"))
    report = {}
    keras.backend.clear_session()
    build_irv2(config)  # the first build takes the plain names
    model, builder = build_irv2(config)
    first = builder.units[0]["conv"].name
    assert first != "conv2d", "names are not offset"
    weights = seeded_weights(builder.units, rng)
    set_weights_by_name(model, weights)
    x = seeded_input(rng, 2, config["image_size"])
    y = run(model, x)
    keras3_path = os.path.join(out_dir, "twice_model.weights.h5")
    model.save_weights(keras3_path)
    report["twice: first automatic name"] = first
    report["twice parameters"] = model.count_params()

    tf_keras.backend.clear_session()
    build_irv2(config, tf_keras)
    legacy, legacy_builder = build_irv2(config, tf_keras)
    legacy_weights = {}
    for unit, legacy_unit in zip(builder.units, legacy_builder.units):  # creation order
        legacy_weights[legacy_unit["conv"].name] = weights[unit["conv"].name]
        if unit["bn"] is not None:
            legacy_weights[legacy_unit["bn"].name] = weights[unit["bn"].name]
    set_weights_by_name(legacy, legacy_weights)
    legacy_path = os.path.join(out_dir, "twice_model.h5")
    legacy.save_weights(legacy_path)
    y_legacy = run(legacy, x)
    report["twice: tf_keras vs keras 3 output"] = float(np.max(np.abs(y_legacy - y)))

    # Keras's loaders, in a fresh session (plain names, so hardly anything matches by name).
    for path in (keras3_path, legacy_path):
        keras.backend.clear_session()
        fresh, _ = build_irv2(config)
        fresh.load_weights(path)
        report[f"twice: keras 3 reloads {os.path.basename(path)} into a fresh model"] = \
            float(np.max(np.abs(run(fresh, x) - y)))
    tf_keras.backend.clear_session()
    fresh, _ = build_irv2(config, tf_keras)
    fresh.load_weights(legacy_path)
    report["twice: tf_keras reloads twice_model.h5 into a fresh model"] = \
        float(np.max(np.abs(run(fresh, x) - y_legacy)))

    write_io(os.path.join(out_dir, "twice_io.h5"), config, x, y,
             note=("config 'twice' (width divisor 32, 2 repeats of each residual block, 64x64): "
                   "Keras inference-mode output of the model whose weights are in "
                   "twice_model.h5 / twice_model.weights.h5, each saved from the second model "
                   f"built in one session (automatic names start at {first})"),
             extra_attrs=dict(weights_files="twice_model.h5 twice_model.weights.h5",
                              parameters=np.int64(model.count_params()),
                              stage_sizes=json.dumps(stage_sizes(config), sort_keys=True)))

    # twice_model.h5 without its last two layers with weights (datasets left unwritten: zeros).
    layers = read_legacy_layers(legacy_path)
    weighted = [i for i, (_, w) in enumerate(layers) if w]
    dropped = [layers[i][0] for i in weighted[-2:]]
    truncated = [layer for i, layer in enumerate(layers) if i not in weighted[-2:]]
    truncated_path = os.path.join(out_dir, "twice_truncated.h5")
    with h5py.File(legacy_path, "r") as f:
        keras_version = f.attrs["keras_version"]
        keras_version = keras_version.decode() if isinstance(keras_version, bytes) \
            else str(keras_version)
    write_legacy_layers(truncated_path, truncated, keras_version,
                        extra_root_attrs={"dropped": json.dumps(dropped)}, data=False)
    report["twice_truncated.h5 drops"] = dropped

    # What Keras refuses: the truncated file, and each config's files in the other's model.
    refusals = {}
    for name, model_config in (("twice_truncated.h5", config),
                               ("tiny_model.h5", config), ("tiny_model.weights.h5", config),
                               ("twice_model.h5", TINY), ("twice_model.weights.h5", TINY)):
        directory = tiny_dir if name.startswith("tiny") else out_dir
        keras.backend.clear_session()
        fresh, _ = build_irv2(model_config)
        try:
            fresh.load_weights(os.path.join(directory, name))
            refusals[name] = None
        except (ValueError, KeyError) as error:
            refusals[name] = str(error).strip().splitlines()[0][:100]
        assert refusals[name], f"keras 3 loaded {name} into a model of another config"
    report["keras 3 refuses"] = refusals
    check_report(report, y)
    return report


def make_full_layer_order(out_dir):
    """full_layer_order.json: keras.applications.InceptionResNetV2(include_top=False)'s layers with
    weights in model.layers order, the order legacy files list them in and Keras 3 numbers its
    groups by (identical in keras 3 and tf_keras; checked). Names only: no weights needed."""
    orders = {}
    for k in (keras, tf_keras):
        k.backend.clear_session()
        reference = k.applications.InceptionResNetV2(include_top=False, weights=None,
                                                     input_shape=(75, 75, 3))
        orders[k.__name__] = [layer.name for layer in reference.layers if layer.weights]
    assert orders["keras"] == orders["tf_keras"], "keras 3 and tf_keras order layers differently"
    with open(os.path.join(out_dir, "full_layer_order.json"), "w") as f:
        json.dump(dict(note="keras.applications.InceptionResNetV2(include_top=False): the names of "
                            "its layers with weights in model.layers order (keras 3 and tf_keras "
                            "agree)",
                       keras_version=keras.__version__, tf_keras_version=tf_keras.__version__,
                       layers=orders["keras"]), f, indent=0)
        f.write("\n")
    return {"full_layer_order.json layers": len(orders["keras"])}


def make_reduced_valid(out_dir, weights):
    config = REDUCED_VALID
    rng = np.random.default_rng(seed_for("inception reduced_valid"))
    keras.backend.clear_session()
    model, _ = build_irv2(config)
    set_weights_by_name(model, weights)
    x = seeded_input(rng, 2, config["image_size"])
    y = run(model, x)
    sizes = stage_sizes(config)
    assert y.shape == (2, sizes["block8"], sizes["block8"], scaled_filters(1536, 8)), y.shape
    assert sizes["block8"] >= 1

    tf_keras.backend.clear_session()
    legacy_model, _ = build_irv2(config, tf_keras)
    set_weights_by_name(legacy_model, weights)
    report = {"reduced_valid stage sizes": sizes,
              "reduced_valid: tf_keras vs keras 3 output":
                  float(np.max(np.abs(run(legacy_model, x) - y))),
              "reduced_valid output rms": float(np.sqrt(np.mean(y ** 2)))}
    write_io(os.path.join(out_dir, "reduced_valid_io.h5"), config, x, y,
             note=("reduced_valid: tiny widths and repeats with every strided stem/reduction "
                   "conv and max-pool, the two non-strided stem 3x3 convs and the 1x1 conv 80 "
                   "VALID, as in Keras. 99 -> 49 -> 47 -> 23 -> 21 -> 10 (block35) -> 4 (block17) "
                   "-> 1 (block8). Weights: the tiny ones (tiny_model.h5 etc.); no weight shape "
                   "depends on padding or image size."),
             extra_attrs=dict(weights_files="tiny_model.h5 tiny_model.weights.h5 "
                              "tiny_slim_names.h5 tiny_slim_names_keras_order.h5",
                              parameters=np.int64(model.count_params()),
                              stage_sizes=json.dumps(sizes, sort_keys=True)))
    check_report(report, y)
    return report


# --------------------------------------------------------------------------------------------
# --verify: re-read the files with h5py alone and recompute the outputs in numpy


def padding_plan(size, kernel, stride, padding):
    """(output size, padding before, padding after) by Keras's rules; SAME puts the odd extra
    pixel after."""
    out = conv_output_size(size, kernel, stride, padding)
    total = 0 if padding == "valid" else max(0, (out - 1) * stride + kernel - size)
    return out, total // 2, total - total // 2


def numpy_conv(x, kernel, stride, padding, bias=None):
    kh, kw = kernel.shape[:2]
    oh, top, bottom = padding_plan(x.shape[1], kh, stride, padding)
    ow, left, right = padding_plan(x.shape[2], kw, stride, padding)
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride] \
                @ kernel[i, j]
    return out if bias is None else out + bias


def numpy_pool(x, stride, padding, kind):
    """3x3 pooling; max pads with -inf, average divides by the number of real cells."""
    oh, top, bottom = padding_plan(x.shape[1], 3, stride, padding)
    ow, left, right = padding_plan(x.shape[2], 3, stride, padding)
    pads = ((0, 0), (top, bottom), (left, right), (0, 0))
    padded = np.pad(x, pads, constant_values=-np.inf if kind == "max" else 0.0)
    real = np.pad(np.ones((1,) + x.shape[1:3] + (1,)), pads)
    windows, counts = [], []
    for i in range(3):
        for j in range(3):
            rows = slice(i, i + stride * (oh - 1) + 1, stride)
            cols = slice(j, j + stride * (ow - 1) + 1, stride)
            windows.append(padded[:, rows, cols])
            counts.append(real[:, rows, cols])
    if kind == "max":
        return np.max(windows, axis=0)
    return np.sum(windows, axis=0) / np.sum(counts, axis=0)


class NumpyEncoder:
    """models/inception_resnet_v2.cpp transcribed into numpy (float64): the same units in the
    same order with the same names, the same forward. Weights come from a legacy file by name."""

    def __init__(self, config, weight_file):
        self.config, self.file = config, weight_file
        self.units, self.conv_count, self.bn_count = [], 0, 0

    def f(self, keras_filters):
        return scaled_filters(keras_filters, self.config["width_divisor"])

    def make(self, kh, kw, stride, padding, activation=True, use_bias=False, name=""):
        if name:
            conv_name, bn_name = name, name + "_bn"
        else:
            conv_name = "conv2d" + (f"_{self.conv_count}" if self.conv_count else "")
            bn_name = "batch_normalization" + (f"_{self.bn_count}" if self.bn_count else "")
            self.conv_count += 1
            self.bn_count += 1
        unit = dict(conv=conv_name, bn=None if use_bias else bn_name, stride=stride,
                    padding=padding, activation=activation,
                    kernel=self.file[conv_name][conv_name + "/kernel:0"][()].astype(np.float64))
        assert unit["kernel"].shape[:2] == (kh, kw), conv_name
        if use_bias:
            unit["bias"] = self.file[conv_name][conv_name + "/bias:0"][()].astype(np.float64)
        else:
            unit["bn_weights"] = [self.file[bn_name][f"{bn_name}/{w}:0"][()].astype(np.float64)
                                  for w in ("beta", "moving_mean", "moving_variance")]
        self.units.append(unit)
        return unit

    def run_unit(self, unit, x):
        y = numpy_conv(x, unit["kernel"], unit["stride"], unit["padding"], unit.get("bias"))
        if unit["bn"] is not None:
            beta, mean, variance = unit["bn_weights"]
            y = (y - mean) / np.sqrt(variance + 1e-3) + beta
        return np.maximum(y, 0.0) if unit["activation"] else y

    def chain(self, units, x):
        for unit in units:
            x = self.run_unit(unit, x)
        return x

    def residual(self, block_type, index, scale, activation):
        m = self.make
        if block_type == "block35":
            branches = [[m(1, 1, 1, "same")], [m(1, 1, 1, "same"), m(3, 3, 1, "same")],
                        [m(1, 1, 1, "same"), m(3, 3, 1, "same"), m(3, 3, 1, "same")]]
        elif block_type == "block17":
            branches = [[m(1, 1, 1, "same")],
                        [m(1, 1, 1, "same"), m(1, 7, 1, "same"), m(7, 1, 1, "same")]]
        else:
            branches = [[m(1, 1, 1, "same")],
                        [m(1, 1, 1, "same"), m(1, 3, 1, "same"), m(3, 1, 1, "same")]]
        up = m(1, 1, 1, "same", False, True, f"{block_type}_{index}_conv")
        return branches, up, scale, activation

    def forward(self, images):
        c, m, red = self.config, self.make, "valid" if self.config["valid_reductions"] else "same"
        stem = [m(3, 3, 2, red), m(3, 3, 1, red), m(3, 3, 1, "same"), m(1, 1, 1, red),
                m(3, 3, 1, red)]
        mixed_5b = [[m(1, 1, 1, "same")], [m(1, 1, 1, "same"), m(5, 5, 1, "same")],
                    [m(1, 1, 1, "same"), m(3, 3, 1, "same"), m(3, 3, 1, "same")],
                    [m(1, 1, 1, "same")]]
        block35 = [self.residual("block35", i, 0.17, True)
                   for i in range(1, c["repeats_block35"] + 1)]
        mixed_6a = [[m(3, 3, 2, red)], [m(1, 1, 1, "same"), m(3, 3, 1, "same"), m(3, 3, 2, red)]]
        block17 = [self.residual("block17", i, 0.10, True)
                   for i in range(1, c["repeats_block17"] + 1)]
        mixed_7a = [[m(1, 1, 1, "same"), m(3, 3, 2, red)], [m(1, 1, 1, "same"), m(3, 3, 2, red)],
                    [m(1, 1, 1, "same"), m(3, 3, 1, "same"), m(3, 3, 2, red)]]
        last = c["repeats_block8"]
        block8 = [self.residual("block8", i, 1.0 if i == last else 0.20, i != last)
                  for i in range(1, last + 1)]
        conv_7b = m(1, 1, 1, "same", name="conv_7b")

        def residual_forward(block, x):
            branches, up, scale, activation = block
            mixed = np.concatenate([self.chain(b, x) for b in branches], axis=3)
            y = x + scale * self.run_unit(up, mixed)
            return np.maximum(y, 0.0) if activation else y

        x = self.chain(stem[:3], images.astype(np.float64))
        x = self.chain(stem[3:], numpy_pool(x, 2, red, "max"))
        x = numpy_pool(x, 2, red, "max")
        x = np.concatenate([self.chain(mixed_5b[0], x), self.chain(mixed_5b[1], x),
                            self.chain(mixed_5b[2], x),
                            self.chain(mixed_5b[3], numpy_pool(x, 1, "same", "avg"))], axis=3)
        for block in block35:
            x = residual_forward(block, x)
        x = np.concatenate([self.chain(mixed_6a[0], x), self.chain(mixed_6a[1], x),
                            numpy_pool(x, 2, red, "max")], axis=3)
        for block in block17:
            x = residual_forward(block, x)
        x = np.concatenate([self.chain(b, x) for b in mixed_7a] + [numpy_pool(x, 2, red, "max")],
                           axis=3)
        for block in block8:
            x = residual_forward(block, x)
        return self.run_unit(conv_7b, x)


def read_keras3_layers(path):
    """[(layer name, [(weight name, array)])] the way io/keras_weights.cpp reads a Keras 3
    file: groups layers/<class>[_k] in natural order, the real name from vars' `name`."""
    def natural(text):
        return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", text) if t]

    with h5py.File(path, "r") as f:
        out = []
        for group_name in sorted(f["layers"], key=natural):
            variables = f["layers"][group_name].get("vars")
            if variables is None or len(variables) == 0:
                continue
            name = variables.attrs.get("name", group_name)
            out.append((name, [(f"vars/{v}", variables[v][()])
                               for v in sorted(variables, key=natural)]))
        return out


def verify(out_dir):
    """Checks the committed files with h5py and numpy only (no Keras): structure, names, shapes
    and values as the C++ reader/importer will see them, and the outputs recomputed by
    NumpyEncoder. Returns a list of problems (empty when all is well)."""
    problems = []
    path = lambda name: os.path.join(out_dir, name)  # noqa: E731
    with h5py.File(path("tiny_model.h5"), "r") as weight_file:
        for io_name, config in (("tiny_io.h5", TINY), ("reduced_valid_io.h5", REDUCED_VALID)):
            with h5py.File(path(io_name), "r") as io:
                if json.loads(io.attrs["config"]) != config:
                    problems.append(f"{io_name}: config attribute differs from {config}")
                x, expected = io["input"][()], io["output"][()]
            encoder = NumpyEncoder(config, weight_file)
            y = encoder.forward(x)
            # Both configs have the same layers; keep their creation order for the checks below.
            order = [(u["conv"], u["bn"]) for u in encoder.units]
            difference = float(np.max(np.abs(y - expected))) if y.shape == expected.shape else None
            print(f"verify: {io_name}: numpy (float64) vs Keras output max |diff| = {difference}"
                  f" (max |output| {np.abs(expected).max():.3g})")
            if difference is None or difference > 1e-5 * max(1.0, np.abs(expected).max()):
                problems.append(f"{io_name}: numpy forward differs from the stored output")

    # The encoder's layers with weights, in creation order, as the C++ importer lists them.
    cpp_names = [n for conv, bn in order for n in (conv, bn) if n is not None]
    by_name = dict(read_legacy_layers(path("tiny_model.h5")))
    reference = [[v for _, v in by_name[n]] for n in cpp_names]
    keras3 = dict(read_keras3_layers(path("tiny_model.weights.h5")))
    if sorted(keras3) != sorted(cpp_names):
        problems.append("tiny_model.weights.h5: layer names differ from the encoder's")
    elif any(not all(np.array_equal(a, b) for a, b in zip(ref, [v for _, v in keras3[n]]))
             for n, ref in zip(cpp_names, reference)):
        problems.append("tiny_model.weights.h5: values differ from tiny_model.h5")
    slim = [w for _, w in read_legacy_layers(path("tiny_slim_names.h5")) if w]
    if len(slim) != len(reference) or any(
            len(a) != len(b) or not all(np.array_equal(u, v) for u, (_, v) in zip(a, b))
            for a, b in zip(reference, slim)):
        problems.append("tiny_slim_names.h5: not the tiny weights in creation order")
    slim_by_name = dict(read_legacy_layers(path("tiny_slim_names.h5")))
    keras_order = [(n, w) for n, w in read_legacy_layers(path("tiny_slim_names_keras_order.h5"))
                   if w]
    if any(not all(np.array_equal(a[1], b[1]) for a, b in zip(w, slim_by_name[n]))
           for n, w in keras_order):
        problems.append("tiny_slim_names_keras_order.h5: values differ from tiny_slim_names.h5")
    broken = dict(read_legacy_layers(path("tiny_broken.h5")))
    missing = sorted(set(cpp_names) - set(broken))
    wrong = sorted(n for n in cpp_names if n in broken and
                   [v.shape for _, v in broken[n]] != [v.shape for v in reference[
                       cpp_names.index(n)]])
    if missing != sorted(BROKEN["missing_layer"]) or wrong != sorted(BROKEN["wrong_shape"]):
        problems.append(f"tiny_broken.h5: missing {missing}, wrong shapes {wrong}")
    print(f"verify: {len(cpp_names)} layers with weights; tiny_broken.h5 misses {missing} and "
          f"has wrong shapes in {wrong}")
    return problems


# --------------------------------------------------------------------------------------------
# Faithfulness check and the optional full-size files


def weighted_layer_signature(model):
    return [(type(layer).__name__, layer.name, [tuple(w.shape) for w in layer.weights])
            for layer in model.layers if layer.weights]


def check_against_keras(image_size=139):
    keras.backend.clear_session()
    reference = keras.applications.InceptionResNetV2(
        include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    keras.backend.clear_session()
    config = dict(FULL, image_size=image_size)
    model, builder = build_irv2(config)
    print(f"parameters: builder {model.count_params():,}, keras.applications "
          f"{reference.count_params():,} (expected {FULL_PARAMETERS:,})")
    assert model.count_params() == reference.count_params() == FULL_PARAMETERS
    assert weighted_layer_signature(model) == weighted_layer_signature(reference), \
        "layer names, classes, order or weight shapes differ"
    classes = [type(layer).__name__ for layer in model.layers]
    reference_classes = [type(layer).__name__ for layer in reference.layers]
    # The builder's residual sum is a Lambda where keras 3 has its CustomScaleLayer.
    assert [c if c != "Lambda" else "CustomScaleLayer" for c in classes] == reference_classes
    assert expected_cpp_names(builder.units) == \
        [layer.name for layer in builder.created if layer.weights]

    rng = np.random.default_rng(seed_for("inception check"))
    weights = seeded_weights(builder.units, rng)
    set_weights_by_name(model, weights)
    set_weights_by_name(reference, weights)  # same names, so the same weights layer by layer
    x = seeded_input(rng, 2, image_size)
    y, y_reference = run(model, x), run(reference, x)
    difference = float(np.max(np.abs(y - y_reference)))
    print(f"output {y.shape}, rms {np.sqrt(np.mean(y ** 2)):.4f}, max |builder - "
          f"keras.applications| = {difference:.3g}")
    assert difference <= 1e-4 * max(1.0, float(np.abs(y_reference).max()))
    return difference


def make_full(directory):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed_for("inception full"))
    keras.backend.clear_session()
    reference = keras.applications.InceptionResNetV2(include_top=False, weights=None,
                                                     input_shape=(299, 299, 3))
    keras.backend.clear_session()
    _, builder = build_irv2(FULL)  # only for the creation order the weights are drawn in
    weights = seeded_weights(builder.units, rng)
    set_weights_by_name(reference, weights)
    x = seeded_input(rng, 1, 299)
    y = run(reference, x)
    reference.save_weights(os.path.join(directory, "full_model.weights.h5"))

    tf_keras.backend.clear_session()
    legacy = tf_keras.applications.InceptionResNetV2(include_top=False, weights=None,
                                                     input_shape=(299, 299, 3))
    set_weights_by_name(legacy, weights)
    legacy.save_weights(os.path.join(directory, "full_model.h5"))
    difference = float(np.max(np.abs(run(legacy, x) - y)))
    write_io(os.path.join(directory, "full_io.h5"), FULL, x, y,
             note="keras.applications.InceptionResNetV2(include_top=False) with seeded weights",
             extra_attrs=dict(weights_files="full_model.h5 full_model.weights.h5",
                              parameters=np.int64(reference.count_params()),
                              stage_sizes=json.dumps(stage_sizes(FULL), sort_keys=True)))
    print(f"full: output {y.shape}, rms {np.sqrt(np.mean(y ** 2)):.4f}, tf_keras vs keras 3 "
          f"{difference:.3g}; wrote {directory}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check-against-keras", action="store_true")
    parser.add_argument("--full", metavar="DIR")
    parser.add_argument("--out", default=OUT_DIR)
    parser.add_argument("--verify", action="store_true",
                        help="check the files in --out with h5py and numpy only, then exit")
    args = parser.parse_args()
    tf.config.experimental.enable_op_determinism()

    if args.check_against_keras:
        check_against_keras()
        return 0
    if args.verify:
        problems = verify(args.out)
        for problem in problems:
            print("verify: PROBLEM:", problem)
        print("verify:", "FAILED" if problems else "all files OK")
        return 1 if problems else 0

    os.makedirs(args.out, exist_ok=True)
    weights, report = make_tiny(args.out)
    report.update(make_reduced_valid(args.out, weights))
    report.update(make_twice(args.out, args.out))
    report.update(make_full_layer_order(args.out))
    for key, value in report.items():
        print(f"{key}: {value}")
    problems = verify(args.out)
    if problems:
        raise SystemExit("gen_inception_fixtures: " + "; ".join(problems))
    total = 0
    for name in sorted(os.listdir(args.out)):
        size = os.path.getsize(os.path.join(args.out, name))
        total += size
        print(f"{size:9d}  {name}")
    print(f"{total:9d}  total")
    if args.full:
        make_full(args.full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
