#!/usr/bin/env python3
"""Golden fixtures that pin glimpse's layers, losses and optimizers to real Keras 3.

Every case runs one Keras layer (or a loss, an optimizer, a tiny model) on seeded random inputs
and seeded random weights, and writes tests/data/layers/<case>.h5 with the inputs, the weights,
the outputs, a random "loss weight" per output and the gradients of
    L = sum_i sum(outputs[i] * loss_weights[i])
with respect to every float input and every trainable weight (tf.GradientTape).  The C++ tests
read these files and compare glimpse's forward and backward passes against them.

The file layout is a contract with the C++ tests; it is documented in tests/golden/README.md.

Usage:
    python3 gen_layer_fixtures.py                 # write every fixture
    python3 gen_layer_fixtures.py --only gru_init_state_T24,dense
    python3 gen_layer_fixtures.py --verify        # re-open the files and check them (float64)
    python3 gen_layer_fixtures.py --list          # print the case names
"""

import argparse
import json
import os
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT_DIR = os.path.normpath(os.path.join(HERE, "..", "data", "layers"))


# --------------------------------------------------------------------------------------------
# Case registry
# --------------------------------------------------------------------------------------------

CASES = {}


def case(name):
    """Registers a case builder; the builder receives a numpy Generator seeded from the name."""

    def register(builder):
        if name in CASES:
            raise ValueError(f"duplicate case name {name}")
        CASES[name] = builder
        return builder

    return register


def seed_for(name):
    # A stable per-case seed: adding or reordering cases never changes another case's numbers.
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def uniform(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(np.float32)


class LayerCase:
    """One single-layer case: the layer, its call inputs, and how to call it."""

    def __init__(self, layer, inputs, call_args=None, note="", weight_ranges=None):
        self.layer = layer
        self.inputs = inputs
        self.call_args = call_args or {}
        self.note = note
        # Optional {weight short name: (low, high)} overriding the default uniform(-0.5, 0.5).
        self.weight_ranges = weight_ranges or {}


def call_layer(layer, inputs, call_args):
    """Calls a layer the way its Keras class expects its inputs.

    The convention is fixed per class so that --verify (and a reader of the README) can
    reproduce the call from the file alone:
      Attention           layer([inputs...], **call_args)        query, value[, key]
      MultiHeadAttention  layer(query=in0, value=in1 or in0, key=in2 if present, **call_args)
      GRU                 layer(in0, initial_state=in1 if present, **call_args)
      Bidirectional       layer(in0, initial_state=[in1, in2] if present, **call_args)
      anything else       layer(in0, **call_args)
    """
    class_name = type(layer).__name__
    if class_name == "Attention":
        return layer(list(inputs), **call_args)
    if class_name == "MultiHeadAttention":
        query = inputs[0]
        value = inputs[1] if len(inputs) > 1 else inputs[0]
        key = inputs[2] if len(inputs) > 2 else None
        return layer(query=query, value=value, key=key, **call_args)
    if class_name == "GRU":
        if len(inputs) > 1:
            return layer(inputs[0], initial_state=inputs[1], **call_args)
        return layer(inputs[0], **call_args)
    if class_name == "Bidirectional":
        # Keras splits the initial_state list in half: the forward layer's, then the backward's.
        if len(inputs) > 1:
            return layer(inputs[0], initial_state=list(inputs[1:]), **call_args)
        return layer(inputs[0], **call_args)
    if len(inputs) != 1:
        raise ValueError(f"call_layer: {class_name} takes one input, got {len(inputs)}")
    return layer(inputs[0], **call_args)


def as_output_list(outputs):
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


def random_weight_values(layer_weights, rng, weight_ranges):
    values = []
    for variable in layer_weights:
        short_name = variable.path.split("/")[-1]
        if short_name in weight_ranges:
            low, high = weight_ranges[short_name]
        elif short_name == "moving_variance":
            low, high = 0.5, 1.5  # variances must be positive
        else:
            low, high = -0.5, 0.5
        values.append(uniform(rng, tuple(variable.shape), low, high))
    return values


def is_float(array):
    return np.issubdtype(np.asarray(array).dtype, np.floating)


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------


def versions():
    return {
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "numpy_version": np.__version__,
    }


def to_json(obj):
    return json.dumps(obj, sort_keys=True, default=str)


def write_array(group, name, array):
    array = np.asarray(array)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype == np.int64:
        array = array.astype(np.int32)
    return group.create_dataset(name, data=array)


def open_fixture(path, case_name, layer_name, config, call_args, note):
    # The HDF5 1.8 file format: compact groups keep these small files about 40% smaller than
    # the "earliest" format, and the HDF5 1.10 C library the C++ tests use reads it.  That
    # format stamps groups with modification times; switching them off makes regenerated files
    # byte-identical, so re-running the generator does not churn git.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    f = h5py.File(h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl))
    f.attrs["case"] = case_name
    f.attrs["layer"] = layer_name
    f.attrs["config"] = to_json(config)
    f.attrs["call_args"] = to_json(call_args)
    for key, value in versions().items():
        f.attrs[key] = value
    f.attrs["note"] = note
    return f


def make_group(parent, name):
    """parent.create_group(name) without modification times (see open_fixture)."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


def write_weights(group, variables, values):
    for index, (variable, value) in enumerate(zip(variables, values)):
        dataset = write_array(group, str(index), value)
        dataset.attrs["name"] = variable.path
        dataset.attrs["trainable"] = np.int32(1 if variable.trainable else 0)


# --------------------------------------------------------------------------------------------
# Generic single-layer case
# --------------------------------------------------------------------------------------------


def run_layer_case(name, spec, rng, out_dir):
    layer = spec.layer
    inputs = [np.asarray(x) for x in spec.inputs]
    # The first call builds the variables.  It runs in inference mode, so a BatchNormalization
    # case that later runs with training=True does not update its moving statistics twice.
    build_args = {k: v for k, v in spec.call_args.items() if k != "training"}
    call_layer(layer, [tf.constant(x) for x in inputs], build_args)

    weight_values = random_weight_values(layer.weights, rng, spec.weight_ranges)
    layer.set_weights(weight_values)

    float_input_indices = [i for i, x in enumerate(inputs) if is_float(x)]
    tf_inputs = [tf.constant(x) for x in inputs]
    with tf.GradientTape(persistent=True) as tape:
        for i in float_input_indices:
            tape.watch(tf_inputs[i])
        outputs = as_output_list(call_layer(layer, tf_inputs, spec.call_args))
        loss_weights = [
            uniform(rng, tuple(o.shape)) if o.dtype.is_floating else None for o in outputs
        ]
        loss = tf.add_n(
            [tf.reduce_sum(o * w) for o, w in zip(outputs, loss_weights) if w is not None]
        )
    input_grads = {i: tape.gradient(loss, tf_inputs[i]) for i in float_input_indices}
    trainable_indices = [i for i, v in enumerate(layer.weights) if v.trainable]
    weight_grads = tape.gradient(loss, [layer.weights[i] for i in trainable_indices])
    del tape

    updated_values = [np.asarray(v) for v in layer.get_weights()]
    weights_changed = any(
        not np.array_equal(a, b) for a, b in zip(weight_values, updated_values)
    )

    config = dict(layer.get_config())
    config.update(spec.call_args)
    path = os.path.join(out_dir, f"{name}.h5")
    with open_fixture(path, name, type(layer).__name__, config, spec.call_args, spec.note) as f:
        group = make_group(f, "inputs")
        for i, x in enumerate(inputs):
            write_array(group, str(i), x)
        write_weights(make_group(f, "weights"), layer.weights, weight_values)
        group = make_group(f, "outputs")
        for i, o in enumerate(outputs):
            write_array(group, str(i), o.numpy())
        group = make_group(f, "loss_weights")
        for i, w in enumerate(loss_weights):
            if w is not None:
                write_array(group, str(i), w)
        grads = make_group(f, "grads")
        group = make_group(grads, "inputs")
        for i, g in input_grads.items():
            write_array(group, str(i), tf.convert_to_tensor(g).numpy())
        group = make_group(grads, "weights")
        for i, g in zip(trainable_indices, weight_grads):
            # Embedding gradients arrive as IndexedSlices; the fixture stores them dense.
            write_array(group, str(i), tf.convert_to_tensor(g).numpy())
        if weights_changed:
            write_weights(make_group(f, "updated_weights"), layer.weights, updated_values)
    return path


# --------------------------------------------------------------------------------------------
# Cases: Dense
# --------------------------------------------------------------------------------------------


@case("dense")
def _(rng):
    return LayerCase(
        keras.layers.Dense(4),
        [uniform(rng, (3, 5))],
        note="Dense(4), bias, no activation; kernel (in, out) = (5, 4).",
    )


@case("dense_relu")
def _(rng):
    return LayerCase(
        keras.layers.Dense(4, activation="relu"),
        [uniform(rng, (3, 5))],
        note="Dense(4, relu); some pre-activations are negative so the relu gradient mask matters.",
    )


@case("dense_3d")
def _(rng):
    return LayerCase(
        keras.layers.Dense(4),
        [uniform(rng, (2, 3, 5))],
        note="Dense on a rank-3 input (B, T, D) as the decoder's output Dense uses it: the "
        "kernel contracts the last axis only.",
    )


# --------------------------------------------------------------------------------------------
# Cases: Conv2D
# --------------------------------------------------------------------------------------------


def conv_case(rng, height, width, kernel, strides, padding, use_bias, cin=3, cout=4, note=""):
    layer = keras.layers.Conv2D(
        cout, kernel, strides=strides, padding=padding, use_bias=use_bias
    )
    x = uniform(rng, (2, height, width, cin))
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (strides, strides) if isinstance(strides, int) else strides

    oh, *pad_h = same_or_valid(height, kh, sh, padding)
    ow, *pad_w = same_or_valid(width, kw, sw, padding)
    text = (
        f"Conv2D {cin}->{cout}, kernel {kh}x{kw}, strides {sh}x{sw}, {padding}, "
        f"bias={use_bias}; input {height}x{width} -> output {oh}x{ow}; "
        f"padding (top, bottom)={tuple(pad_h)}, (left, right)={tuple(pad_w)}."
    )
    if note:
        text += " " + note
    return LayerCase(layer, [x], note=text)


CONV_GRID = [
    # (height, width, strides, padding, bias)
    (7, 7, 1, "same", True),
    (8, 8, 1, "same", True),
    (7, 7, 2, "same", True),
    (8, 8, 2, "same", True),
    (7, 7, 1, "valid", True),
    (8, 8, 1, "valid", True),
    (7, 7, 2, "valid", False),
    (8, 8, 2, "valid", False),
]

for _h, _w, _s, _p, _b in CONV_GRID:
    _name = f"conv2d_{_p}_s{_s}_{_h}x{_w}" + ("" if _b else "_nobias")

    def _make(rng, h=_h, w=_w, s=_s, p=_p, b=_b):
        return conv_case(rng, h, w, 3, s, p, b)

    case(_name)(_make)


@case("conv2d_same_s2_6x6_nobias")
def _(rng):
    return conv_case(
        rng, 6, 6, 3, 2, "same", False,
        note="Asymmetric SAME: total padding 1 goes entirely to the bottom/right.",
    )


@case("conv2d_same_s2_5x7_k4")
def _(rng):
    return conv_case(
        rng, 5, 7, 4, 2, "same", True,
        note="Even kernel on a non-square input: padding (1, 2) rows and (1, 2) columns.",
    )


@case("conv2d_1x1")
def _(rng):
    return conv_case(
        rng, 5, 6, 1, 1, "valid", False, cin=3, cout=4,
        note="1x1 convolution without bias, as Inception's conv2d_bn uses it.",
    )


@case("conv2d_1x7_same")
def _(rng):
    return conv_case(
        rng, 6, 9, (1, 7), 1, "same", False,
        note="1x7 kernel on a non-square 6x9 input (Inception block17); catches H/W mix-ups.",
    )


@case("conv2d_7x1_same")
def _(rng):
    return conv_case(
        rng, 9, 6, (7, 1), 1, "same", False,
        note="7x1 kernel on a non-square 9x6 input (Inception block17).",
    )


def conv_options_case(rng, height, width, kernel, layer, cin, note):
    """A Conv2D or DepthwiseConv2D case with dilation/groups/multiplier; the note spells them out."""
    x = uniform(rng, (2, height, width, cin))
    config = layer.get_config()
    (kh, kw), (sh, sw) = config["kernel_size"], config["strides"]
    (dh, dw), padding = config["dilation_rate"], config["padding"]
    oh, *pad_h = same_or_valid(height, kh, sh, padding, dh)
    ow, *pad_w = same_or_valid(width, kw, sw, padding, dw)
    text = (
        f"{type(layer).__name__}, input {height}x{width}x{cin}, kernel {kh}x{kw}, strides "
        f"{sh}x{sw}, dilation {dh}x{dw}, {padding}; output {oh}x{ow}; padding (top, bottom)="
        f"{tuple(pad_h)}, (left, right)={tuple(pad_w)}. {note}"
    )
    return LayerCase(layer, [x], note=text)


@case("conv2d_dilation2_same")
def _(rng):
    return conv_options_case(
        rng, 9, 8, 3, keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2), 3,
        "A 3x3 kernel dilated 2 spans 5x5: SAME pads 2 on each side.",
    )


@case("conv2d_dilation_3x2_valid")
def _(rng):
    return conv_options_case(
        rng, 10, 11, (3, 2),
        keras.layers.Conv2D(4, (3, 2), padding="valid", dilation_rate=(2, 3), use_bias=False), 3,
        "Different dilations per axis on a non-square kernel: spans 5 rows and 4 columns.",
    )


@case("conv2d_dilation2_same_even")
def _(rng):
    return conv_options_case(
        rng, 7, 6, 2, keras.layers.Conv2D(3, 2, padding="same", dilation_rate=2), 2,
        "Even kernel dilated 2 spans 3: total padding 2, split 1/1.",
    )


@case("conv2d_groups2_same_s2")
def _(rng):
    return conv_options_case(
        rng, 7, 8, 3, keras.layers.Conv2D(6, 3, strides=2, padding="same", groups=2), 4,
        "groups=2: kernel (3, 3, 2, 6); outputs 0-2 read inputs 0-1, outputs 3-5 inputs 2-3.",
    )


@case("conv2d_groups3_valid_nobias")
def _(rng):
    return conv_options_case(
        rng, 6, 5, 2, keras.layers.Conv2D(3, 2, padding="valid", groups=3, use_bias=False), 6,
        "groups=3, one output channel per group: kernel (2, 2, 2, 3).",
    )


@case("depthwise_same_s1")
def _(rng):
    return conv_options_case(
        rng, 6, 7, 3, keras.layers.DepthwiseConv2D(3, padding="same"), 3,
        "depth_multiplier 1: kernel (3, 3, 3, 1), output channel c from input channel c.",
    )


@case("depthwise_valid_s2_m2")
def _(rng):
    return conv_options_case(
        rng, 9, 8, 3, keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", depth_multiplier=2),
        3, "depth_multiplier 2: output channel c * 2 + m from input channel c.",
    )


@case("depthwise_same_s2_m3_nobias")
def _(rng):
    return conv_options_case(
        rng, 6, 7, (2, 3),
        keras.layers.DepthwiseConv2D((2, 3), strides=2, padding="same", depth_multiplier=3,
                                     use_bias=False),
        2, "Asymmetric SAME padding with a non-square kernel; multiplier 3.",
    )


@case("depthwise_dilation2_same_m2")
def _(rng):
    return conv_options_case(
        rng, 8, 7, 3,
        keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dilation_rate=2), 3,
        "Dilated depthwise convolution.",
    )


# --------------------------------------------------------------------------------------------
# Cases: BatchNormalization
# --------------------------------------------------------------------------------------------


@case("batchnorm_inference")
def _(rng):
    return LayerCase(
        keras.layers.BatchNormalization(),
        [uniform(rng, (2, 3, 3, 4), -2.0, 2.0)],
        call_args={"training": False},
        note="Inference: (x - moving_mean) / sqrt(moving_variance + 1e-3) * gamma + beta. "
        "Weights: gamma, beta (trainable), moving_mean, moving_variance (not trainable).",
    )


@case("batchnorm_training")
def _(rng):
    return LayerCase(
        keras.layers.BatchNormalization(),
        [uniform(rng, (2, 3, 3, 4), -2.0, 2.0)],
        call_args={"training": True},
        note="Training: normalises with the batch mean and the BIASED batch variance over "
        "(N, H, W); updated_weights holds the moving statistics after this one call: "
        "moving = moving * 0.99 + batch * 0.01, with the biased variance (Keras 3; tf.keras 2's "
        "fused kernel used the unbiased one). Input gradients flow through the batch statistics.",
    )


@case("batchnorm_noscale")
def _(rng):
    return LayerCase(
        keras.layers.BatchNormalization(scale=False),
        [uniform(rng, (2, 3, 3, 4), -2.0, 2.0)],
        call_args={"training": False},
        note="scale=False as Inception's conv2d_bn: no gamma weight at all; weights are beta, "
        "moving_mean, moving_variance. Inference mode.",
    )


# --------------------------------------------------------------------------------------------
# Cases: pooling
# --------------------------------------------------------------------------------------------


@case("maxpool2d_3x3_s1_same")
def _(rng):
    return LayerCase(
        keras.layers.MaxPooling2D(3, strides=1, padding="same"),
        [uniform(rng, (2, 5, 5, 3))],
        note="Padded cells act as -inf. Random floats, so no ties.",
    )


@case("maxpool2d_3x3_s2_valid")
def _(rng):
    return LayerCase(
        keras.layers.MaxPooling2D(3, strides=2, padding="valid"),
        [uniform(rng, (2, 7, 7, 3))],
        note="Inception's stem/reduction pooling; 7x7 -> 3x3.",
    )


@case("maxpool2d_2x2_s2_same_odd")
def _(rng):
    return LayerCase(
        keras.layers.MaxPooling2D(2, strides=2, padding="same"),
        [uniform(rng, (2, 7, 7, 3))],
        note="7x7 -> 4x4; total padding 1, all at the bottom/right.",
    )


@case("averagepool2d_3x3_s1_same")
def _(rng):
    return LayerCase(
        keras.layers.AveragePooling2D(3, strides=1, padding="same"),
        [uniform(rng, (2, 5, 5, 3))],
        note="Divisor = number of real (unpadded) cells: 4 at corners, 6 on edges, 9 inside "
        "(Inception mixed_5b's pool).",
    )


@case("averagepool2d_3x3_s2_valid")
def _(rng):
    return LayerCase(
        keras.layers.AveragePooling2D(3, strides=2, padding="valid"),
        [uniform(rng, (2, 7, 7, 3))],
        note="7x7 -> 3x3, divisor always 9.",
    )


@case("averagepool2d_2x2_s2_same_odd")
def _(rng):
    return LayerCase(
        keras.layers.AveragePooling2D(2, strides=2, padding="same"),
        [uniform(rng, (2, 7, 7, 3))],
        note="7x7 -> 4x4; the last row/column windows hold 2 (corner: 1) real cells and divide "
        "by that count.",
    )


@case("global_average_pooling2d")
def _(rng):
    return LayerCase(
        keras.layers.GlobalAveragePooling2D(),
        [uniform(rng, (2, 3, 4, 5))],
        note="Mean over H and W; output (N, C).",
    )


# --------------------------------------------------------------------------------------------
# Cases: Embedding, LayerNormalization, activations
# --------------------------------------------------------------------------------------------


@case("embedding")
def _(rng):
    ids = np.array([[1, 4, 4, 0, 9], [7, 0, 0, 3, 4]], dtype=np.int32)
    return LayerCase(
        keras.layers.Embedding(10, 4),
        [ids],
        note="Embedding(10, 4), mask_zero=False so id 0 is an ordinary row. Ids repeat (4 three "
        "times, 0 three times), so the weight gradient must accumulate; rows never looked up "
        "have zero gradient. Gradient stored dense (Keras produces IndexedSlices).",
    )


@case("layernorm")
def _(rng):
    return LayerCase(
        keras.layers.LayerNormalization(),
        [uniform(rng, (2, 3, 6), -2.0, 2.0)],
        note="axis=-1, epsilon=1e-3 (Keras default), biased variance; weights gamma, beta.",
    )


for _activation in ("relu", "sigmoid", "tanh"):

    def _make(rng, activation=_activation):
        x = uniform(rng, (3, 4), -3.0, 3.0)
        note = f"keras.layers.Activation('{activation}')."
        if activation == "relu":
            x[0, 0] = 0.0
            note += " inputs/0[0,0] is exactly 0: TF's relu gradient there is 0."
        return LayerCase(keras.layers.Activation(activation), [x], note=note)

    case(f"activation_{_activation}")(_make)


@case("activation_softmax")
def _(rng):
    return LayerCase(
        keras.layers.Softmax(axis=-1),
        [uniform(rng, (2, 3, 5), -3.0, 3.0)],
        note="keras.layers.Softmax(axis=-1).",
    )


# --------------------------------------------------------------------------------------------
# Cases: GRU
# --------------------------------------------------------------------------------------------


def gru_case(rng, steps, with_initial_state):
    layer = keras.layers.GRU(7, return_sequences=True, return_state=True)
    inputs = [uniform(rng, (3, steps, 5))]
    if with_initial_state:
        inputs.append(uniform(rng, (3, 7)))
    note = (
        "GRU(7, return_sequences=True, return_state=True), reset_after=True. Weights: "
        "kernel (5, 21), recurrent_kernel (7, 21), bias (2, 21) (row 0 input bias, row 1 "
        "recurrent bias); each 21-wide block is [z | r | h]. Outputs: sequence (B, T, 7), "
        "final state (B, 7) (equal to the last sequence step)."
    )
    if with_initial_state:
        note += (" inputs/1 is the initial state (layer(x, initial_state=h0)); grads/inputs/1 is "
                 "dL/dh0.")
    else:
        note += " Zero initial state."
    return LayerCase(layer, inputs, note=note)


for _steps in (1, 24):
    for _init in (False, True):

        def _make(rng, steps=_steps, init=_init):
            return gru_case(rng, steps, init)

        case(f"gru_{'init_state' if _init else 'zero_state'}_T{_steps}")(_make)


GRU_VARIANT_NOTE = (
    "GRU(7, return_sequences=True, return_state=True, reset_after={reset_after}, "
    "go_backwards={go_backwards}) on x (3, {steps}, 5), initial state inputs/1 (3, 7). "
)
RESET_BEFORE_NOTE = (
    "reset_after=False: c = tanh(x Wh + bh + (r * h) Uh), the reset gate multiplies h BEFORE the "
    "recurrent matmul; bias is ONE vector (21,) = [z | r | h] on the input side (no recurrent "
    "bias). "
)
GO_BACKWARDS_NOTE = (
    "go_backwards=True: the steps run from x[:, T-1] down to x[:, 0] and the sequence output is "
    "in PROCESSING order (outputs/0[:, 0] is the state after reading x[:, T-1]; it is NOT flipped "
    "back); the final state equals outputs/0[:, T-1]. "
)


def gru_variant_case(rng, steps, reset_after, go_backwards):
    layer = keras.layers.GRU(7, return_sequences=True, return_state=True,
                             reset_after=reset_after, go_backwards=go_backwards)
    inputs = [uniform(rng, (3, steps, 5)), uniform(rng, (3, 7))]
    note = GRU_VARIANT_NOTE.format(reset_after=reset_after, go_backwards=go_backwards,
                                   steps=steps)
    if not reset_after:
        note += RESET_BEFORE_NOTE
    if go_backwards:
        note += GO_BACKWARDS_NOTE
    return LayerCase(layer, inputs, note=note + "grads/inputs/1 is dL/dh0.")


for _name, _steps, _reset_after, _go_backwards in (
    ("gru_reset_before_T1", 1, False, False),
    ("gru_reset_before_T24", 24, False, False),
    ("gru_go_backwards_T24", 24, True, True),
    ("gru_reset_before_go_backwards_T24", 24, False, True),
):

    def _make(rng, steps=_steps, reset_after=_reset_after, go_backwards=_go_backwards):
        return gru_variant_case(rng, steps, reset_after, go_backwards)

    case(_name)(_make)


# --------------------------------------------------------------------------------------------
# Cases: Bidirectional(GRU)
# --------------------------------------------------------------------------------------------


def bidirectional_case(rng, merge_mode, return_sequences, return_state, reset_after=True,
                       with_initial_state=False):
    layer = keras.layers.Bidirectional(
        keras.layers.GRU(6, return_sequences=return_sequences, return_state=return_state,
                         reset_after=reset_after),
        merge_mode=merge_mode,
    )
    inputs = [uniform(rng, (2, 9, 5))]
    if with_initial_state:
        inputs += [uniform(rng, (2, 6)), uniform(rng, (2, 6))]
    note = (
        f"Bidirectional(GRU(6, return_sequences={return_sequences}, return_state={return_state}, "
        f"reset_after={reset_after}), merge_mode='{merge_mode}') on x (2, 9, 5). Weights: "
        "forward_gru's kernel, recurrent_kernel, bias, then backward_gru's (a go_backwards=True "
        "copy). The backward GRU's sequence is flipped back to input order before merging, so "
        "step t of both halves belongs to x[:, t]. "
    )
    if return_sequences:
        note += "outputs/0 is the merged sequence (2, 9, %d). " % (12 if merge_mode == "concat" else 6)
    else:
        note += ("outputs/0 is merge(forward final state, backward final state) (the backward "
                 "one is after reading x[:, 0]). ")
    if return_state:
        note += "outputs/1, outputs/2: the forward and the backward final states (2, 6). "
    if with_initial_state:
        note += ("inputs/1, inputs/2: the forward and backward initial states "
                 "(layer(x, initial_state=[h0_forward, h0_backward])).")
    return LayerCase(layer, inputs, note=note)


for _name, _args in (
    ("bidirectional_gru_concat", ("concat", True, True, True, True)),
    ("bidirectional_gru_sum", ("sum", True, False)),
    ("bidirectional_gru_mul", ("mul", True, False)),
    ("bidirectional_gru_ave", ("ave", True, False)),
    ("bidirectional_gru_last_concat", ("concat", False, False)),
    ("bidirectional_gru_reset_before_concat", ("concat", True, True, False, True)),
):

    def _make(rng, args=_args):
        return bidirectional_case(rng, *args)

    case(_name)(_make)


# --------------------------------------------------------------------------------------------
# Cases: Attention
# --------------------------------------------------------------------------------------------


def attention_inputs(rng, with_key=False):
    inputs = [uniform(rng, (2, 5, 6)), uniform(rng, (2, 7, 6))]
    if with_key:
        inputs.append(uniform(rng, (2, 7, 6)))
    return inputs


ATTENTION_NOTE = (
    "Luong dot attention: scores = query . key^T (B, Tq, Tv), weights = softmax over Tv, "
    "output = weights . value. key defaults to value. "
)


@case("attention_plain")
def _(rng):
    return LayerCase(
        keras.layers.Attention(),
        attention_inputs(rng),
        note=ATTENTION_NOTE + "Inputs query (2,5,6), value (2,7,6); no weights.",
    )


@case("attention_with_key")
def _(rng):
    return LayerCase(
        keras.layers.Attention(),
        attention_inputs(rng, with_key=True),
        note=ATTENTION_NOTE + "Explicit key: inputs query, value, key (layer([q, v, k])).",
    )


@case("attention_use_scale")
def _(rng):
    return LayerCase(
        keras.layers.Attention(use_scale=True),
        attention_inputs(rng),
        note=ATTENTION_NOTE + "use_scale=True: one trainable scalar weight 'scale' (shape ()) "
        "MULTIPLIES the raw scores before the softmax (no 1/sqrt(d)). Set to a random value in "
        "[0.5, 1.5].",
        weight_ranges={"scale": (0.5, 1.5)},
    )


@case("attention_causal")
def _(rng):
    return LayerCase(
        keras.layers.Attention(),
        attention_inputs(rng),
        call_args={"use_causal_mask": True},
        note=ATTENTION_NOTE + "use_causal_mask=True with Tq=5 < Tv=7: query row i (0-based) sees "
        "value columns j <= i only. Masked scores get 1e9 SUBTRACTED (not -inf), so their "
        "softmax weight is exactly 0 in float32.",
    )


@case("attention_scores")
def _(rng):
    return LayerCase(
        keras.layers.Attention(),
        attention_inputs(rng),
        call_args={"return_attention_scores": True},
        note=ATTENTION_NOTE + "return_attention_scores=True: outputs/1 is the softmax weights "
        "(B, Tq, Tv) (Keras calls the post-softmax weights 'scores'); the loss includes both "
        "outputs, so gradients also flow through the weights output.",
    )


# --------------------------------------------------------------------------------------------
# Cases: MultiHeadAttention
# --------------------------------------------------------------------------------------------

MHA_NOTE = (
    "MultiHeadAttention(num_heads=2, key_dim=3): weights in order query/kernel (6,2,3), "
    "query/bias (2,3), key/kernel (6,2,3), key/bias (2,3), value/kernel (6,2,3), value/bias "
    "(2,3), attention_output/kernel (2,3,6), attention_output/bias (6,). The projected query is "
    "multiplied by 1/sqrt(key_dim) before the dot product; softmax over keys; masked positions "
    "get -1e9 (replaced, not added). value_dim defaults to key_dim; output dim = query's last dim. "
)


@case("multi_head_attention")
def _(rng):
    return LayerCase(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=3),
        [uniform(rng, (2, 4, 6)), uniform(rng, (2, 5, 6))],
        call_args={"return_attention_scores": True},
        note=MHA_NOTE + "Cross-attention: query (2,4,6), value = key (2,5,6). outputs/1 is the "
        "attention probabilities (B, heads, Tq, Tv).",
    )


@case("multi_head_attention_causal")
def _(rng):
    return LayerCase(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=3),
        [uniform(rng, (2, 4, 6))],
        call_args={"return_attention_scores": True, "use_causal_mask": True},
        note=MHA_NOTE + "Causal self-attention: ONE input used as query, value and key "
        "(layer(query=x, value=x)); grads/inputs/0 sums all three paths. outputs/1 is the "
        "attention probabilities (B, heads, T, T).",
    )


@case("multi_head_attention_causal_noscores")
def _(rng):
    return LayerCase(
        keras.layers.MultiHeadAttention(num_heads=2, key_dim=3),
        [uniform(rng, (2, 4, 6))],
        call_args={"use_causal_mask": True},
        note=MHA_NOTE + "Causal self-attention without return_attention_scores: Keras then routes "
        "through ops.dot_product_attention(is_causal=True), a different code path from the "
        "explicit one; the result must match multi_head_attention_causal's formula.",
    )


# --------------------------------------------------------------------------------------------
# Special cases: masked loss, optimizers, decoder model
# --------------------------------------------------------------------------------------------


def masked_sparse_ce(logits, targets):
    """The notebook's loss: per-token SCE from logits, padding (target 0) masked, sum/sum."""
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    per_token = loss_object(targets, logits)
    mask = tf.cast(tf.not_equal(targets, 0), per_token.dtype)
    return tf.reduce_sum(per_token * mask) / tf.reduce_sum(mask), loss_object


def run_masked_loss_case(name, rng, out_dir):
    logits = uniform(rng, (3, 6, 11), -3.0, 3.0)
    targets = rng.integers(1, 11, size=(3, 6)).astype(np.int32)
    targets[0, 4:] = 0
    targets[1, 2:] = 0
    targets[2, 1] = 0  # a zero in the middle is masked too: the mask is per token, not a length
    logits_tf = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits_tf)
        loss, loss_object = masked_sparse_ce(logits_tf, tf.constant(targets))
    grad = tape.gradient(loss, logits_tf)

    config = dict(loss_object.get_config())
    config.update({"mask": "targets != 0", "masked_reduction": "sum(loss * mask) / sum(mask)"})
    note = (
        "The notebook's masked loss: per-token sparse categorical cross-entropy from logits "
        "(reduction none), mask = targets != 0, loss = sum(loss * mask) / sum(mask). inputs/0 "
        "logits (3, 6, 11) float, inputs/1 targets (3, 6) int32. Here L IS the loss: outputs/0 is "
        "the scalar loss, loss_weights/0 is the scalar 1.0, grads/inputs/0 = dloss/dlogits "
        "(zero at masked positions). No weights."
    )
    path = os.path.join(out_dir, f"{name}.h5")
    with open_fixture(path, name, "SparseCategoricalCrossentropy", config, {}, note) as f:
        group = make_group(f, "inputs")
        write_array(group, "0", logits)
        write_array(group, "1", targets)
        make_group(f, "weights")
        write_array(make_group(f, "outputs"), "0", np.float32(loss.numpy()))
        write_array(make_group(f, "loss_weights"), "0", np.float32(1.0))
        grads = make_group(f, "grads")
        write_array(make_group(grads, "inputs"), "0", grad.numpy())
        make_group(grads, "weights")
    return path


def build_tiny_mlp(dtype="float32"):
    keras.backend.clear_session()
    inputs = keras.Input((3,), dtype=dtype, name="x")
    hidden = keras.layers.Dense(4, activation="relu", name="hidden", dtype=dtype)(inputs)
    outputs = keras.layers.Dense(3, name="out", dtype=dtype)(hidden)
    return keras.Model(inputs, outputs, name="tiny_mlp")


def mse(model, x, y):
    return keras.losses.MeanSquaredError()(y, model(x))


def run_optimizer_case(name, rng, out_dir, make_optimizer, optimizer_text):
    model = build_tiny_mlp()
    x = uniform(rng, (5, 3))
    y = uniform(rng, (5, 3))
    initial = random_weight_values(model.weights, rng, {})
    model.set_weights(initial)
    optimizer = make_optimizer()

    x_tf, y_tf = tf.constant(x), tf.constant(y)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x_tf)
        tape.watch(y_tf)
        loss0 = mse(model, x_tf, y_tf)
    input_grads = [tape.gradient(loss0, x_tf), tape.gradient(loss0, y_tf)]
    weight_grads0 = tape.gradient(loss0, model.trainable_weights)
    del tape

    step_losses, step_weights = [], []
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = mse(model, x_tf, y_tf)
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        step_losses.append(float(loss.numpy()))
        step_weights.append([np.asarray(w) for w in model.get_weights()])

    config = {
        "optimizer": optimizer.get_config(),
        "model": [layer.get_config() for layer in model.layers[1:]],
        "loss": "MeanSquaredError (mean over every element of the (5, 3) batch)",
    }
    note = (
        f"Tiny model Dense(4, relu) -> Dense(3) on one fixed batch, MSE loss, {optimizer_text}. "
        "inputs/0 = x (5, 3), inputs/1 = y (5, 3) (float targets). weights/<i> = initial weights "
        "(model.weights order). outputs/0 = the MSE at the initial weights, loss_weights/0 = "
        "scalar 1.0 (L is that loss); grads/ are its gradients at the initial weights. "
        "steps/<k>/<i> = weight i after k optimizer steps (k = 1, 2, 3), each step computing the "
        "gradient at the current weights; step_losses[k-1] = the loss evaluated just BEFORE "
        "step k."
    )
    path = os.path.join(out_dir, f"{name}.h5")
    with open_fixture(path, name, type(optimizer).__name__, config, {}, note) as f:
        group = make_group(f, "inputs")
        write_array(group, "0", x)
        write_array(group, "1", y)
        write_weights(make_group(f, "weights"), model.weights, initial)
        write_array(make_group(f, "outputs"), "0", np.float32(loss0.numpy()))
        write_array(make_group(f, "loss_weights"), "0", np.float32(1.0))
        grads = make_group(f, "grads")
        group = make_group(grads, "inputs")
        write_array(group, "0", input_grads[0].numpy())
        write_array(group, "1", input_grads[1].numpy())
        group = make_group(grads, "weights")
        for i, g in enumerate(weight_grads0):
            write_array(group, str(i), g.numpy())
        steps = make_group(f, "steps")
        for k, values in enumerate(step_weights, start=1):
            write_weights(make_group(steps, str(k)), model.weights, values)
        write_array(f, "step_losses", np.array(step_losses, dtype=np.float32))
    return path


DECODER_VOCAB, DECODER_DIM = 13, 8


def build_decoder(dtype="float32"):
    """The notebook decoder at toy size, layer for layer, with fixed layer names."""
    keras.backend.clear_session()
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    features = keras.Input((4, DECODER_DIM), dtype=dtype, name="image_features")
    embedded = keras.layers.Embedding(DECODER_VOCAB, DECODER_DIM, name="embedding", dtype=dtype)(
        tokens
    )
    gru_output, _gru_state = keras.layers.GRU(
        DECODER_DIM, return_sequences=True, return_state=True, name="gru", dtype=dtype
    )(embedded)
    context = keras.layers.Attention(name="attention", dtype=dtype)([gru_output, features])
    added = keras.layers.Add(name="add", dtype=dtype)([gru_output, context])
    normed = keras.layers.LayerNormalization(axis=-1, name="layer_norm", dtype=dtype)(added)
    logits = keras.layers.Dense(DECODER_VOCAB, name="logits", dtype=dtype)(normed)
    return keras.Model([tokens, features], logits, name="captioner_decoder")


def run_decoder_case(name, rng, out_dir):
    model = build_decoder()
    tokens = np.array([[3, 5, 2, 9, 0], [3, 12, 12, 4, 0]], dtype=np.int32)
    features = uniform(rng, (2, 4, DECODER_DIM))
    weight_values = random_weight_values(model.weights, rng, {})
    model.set_weights(weight_values)

    features_tf = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(features_tf)
        logits = model([tf.constant(tokens), features_tf])
        loss_weight = uniform(rng, tuple(logits.shape))
        loss = tf.reduce_sum(logits * loss_weight)
    grads = tape.gradient(loss, [features_tf] + list(model.trainable_weights))
    trainable_indices = [i for i, v in enumerate(model.weights) if v.trainable]

    note = (
        "The notebook decoder at toy size: tokens (2, 5) int32 -> Embedding(13, 8) -> GRU(8, "
        "return_sequences, return_state; zero initial state) -> Attention()([gru_output, "
        "image_features]) -> Add()([gru_output, context]) -> LayerNormalization(axis=-1) -> "
        "Dense(13). inputs/0 tokens, inputs/1 image features (2, 4, 8). outputs/0 logits "
        "(2, 5, 13). weights in model.weights order: embedding/embeddings, gru/gru_cell/kernel, "
        "gru/gru_cell/recurrent_kernel, gru/gru_cell/bias, layer_norm/gamma, layer_norm/beta, "
        "logits/kernel, logits/bias. config is model.get_config() (functional graph)."
    )
    path = os.path.join(out_dir, f"{name}.h5")
    with open_fixture(path, name, "Functional", model.get_config(), {}, note) as f:
        group = make_group(f, "inputs")
        write_array(group, "0", tokens)
        write_array(group, "1", features)
        write_weights(make_group(f, "weights"), model.weights, weight_values)
        write_array(make_group(f, "outputs"), "0", logits.numpy())
        write_array(make_group(f, "loss_weights"), "0", loss_weight)
        group = make_group(f, "grads")
        write_array(make_group(group, "inputs"), "1", grads[0].numpy())
        weights_group = make_group(group, "weights")
        for i, g in zip(trainable_indices, grads[1:]):
            write_array(weights_group, str(i), tf.convert_to_tensor(g).numpy())
    return path


SPECIAL_CASES = {
    "sparse_categorical_crossentropy_masked": run_masked_loss_case,
    "adam_three_steps": lambda name, rng, out: run_optimizer_case(
        name, rng, out, lambda: keras.optimizers.Adam(),
        "keras.optimizers.Adam() with default hyperparameters (lr 1e-3, beta_1 0.9, beta_2 0.999, "
        "epsilon 1e-7)",
    ),
    "sgd_momentum_three_steps": lambda name, rng, out: run_optimizer_case(
        name, rng, out, lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        "keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), nesterov=False",
    ),
    "captioner_decoder_step": run_decoder_case,
}


def all_case_names():
    return list(CASES) + list(SPECIAL_CASES)


def generate(name, out_dir):
    keras.backend.clear_session()  # deterministic auto names ("dense", not "dense_7")
    seed = seed_for(name)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    if name in SPECIAL_CASES:
        return SPECIAL_CASES[name](name, rng, out_dir)
    spec = CASES[name](rng)
    return run_layer_case(name, spec, rng, out_dir)


# --------------------------------------------------------------------------------------------
# --verify: re-open each file and check it in float64, independently of the generation path
# --------------------------------------------------------------------------------------------

VERIFY_PROBES_PER_TENSOR = 3
FD_STEP = 1e-6


def read_indexed_group(group):
    if group is None:
        return {}
    return {int(k): np.asarray(group[k][()]) for k in group.keys()}


def fd_probe_indices(array, rng):
    flat = np.asarray(array).reshape(-1)
    candidates = np.flatnonzero(flat != 0.0) if flat.size > 1 else np.arange(flat.size)
    if candidates.size == 0:
        candidates = np.arange(flat.size)
    count = min(VERIFY_PROBES_PER_TENSOR, candidates.size)
    return rng.choice(candidates, size=count, replace=False)


def check_close(label, got, want, atol, rtol, problems):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        problems.append(f"{label}: shape {got.shape} != {want.shape}")
        return
    error = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    if np.any(error > bound):
        worst = np.unravel_index(np.argmax(error - bound), error.shape)
        problems.append(
            f"{label}: max excess at {worst}: got {got[worst]!r}, want {want[worst]!r}"
        )


def finite_difference_checks(loss_fn, float_arrays, stored_grads, rng, problems, label):
    """Central differences of loss_fn(arrays) on a few entries of each array, in float64."""
    for key, array in float_arrays.items():
        if key not in stored_grads:
            continue
        for flat_index in fd_probe_indices(array, rng):
            plus = {k: v.copy() for k, v in float_arrays.items()}
            minus = {k: v.copy() for k, v in float_arrays.items()}
            plus[key].reshape(-1)[flat_index] += FD_STEP
            minus[key].reshape(-1)[flat_index] -= FD_STEP
            estimate = (loss_fn(plus) - loss_fn(minus)) / (2 * FD_STEP)
            stored = float(np.asarray(stored_grads[key]).reshape(-1)[flat_index])
            if abs(estimate - stored) > 2e-4 + 2e-3 * abs(estimate):
                problems.append(
                    f"{label}: d/d{key}[{flat_index}] finite difference {estimate:.7g} "
                    f"!= stored {stored:.7g}"
                )


def verify_layer_file(f, rng, problems):
    name = f.attrs["case"]
    layer_class = getattr(keras.layers, f.attrs["layer"])
    call_args = json.loads(f.attrs["call_args"])
    config = json.loads(f.attrs["config"])
    for key in call_args:
        config.pop(key, None)
    config["dtype"] = "float64"
    # A wrapper's inner layers carry their own dtype; float32 ones would make the float64
    # finite differences below meaningless.
    for inner in ("layer", "backward_layer"):
        if isinstance(config.get(inner), dict):
            config[inner]["config"]["dtype"] = "float64"
    keras.backend.clear_session()
    layer = layer_class.from_config(config)

    inputs = read_indexed_group(f["inputs"])
    inputs = [inputs[i] for i in range(len(inputs))]
    inputs64 = [x.astype(np.float64) if is_float(x) else x for x in inputs]
    weights = read_indexed_group(f["weights"])
    weights64 = [weights[i].astype(np.float64) for i in range(len(weights))]
    outputs = read_indexed_group(f["outputs"])
    loss_weights = read_indexed_group(f["loss_weights"])
    input_grads = read_indexed_group(f["grads"].get("inputs"))
    weight_grads = read_indexed_group(f["grads"].get("weights"))

    build_args = {k: v for k, v in call_args.items() if k != "training"}
    call_layer(layer, [tf.constant(x) for x in inputs64], build_args)
    if len(layer.weights) != len(weights64):
        problems.append(f"{name}: layer has {len(layer.weights)} weights, file {len(weights64)}")
        return
    for i, variable in enumerate(layer.weights):
        stored_name = f["weights"][str(i)].attrs["name"]
        # Rebuilt from its config, a wrapper's inner variables lose the wrapper's name prefix.
        if variable.path != stored_name and stored_name != f"{layer.name}/{variable.path}":
            problems.append(f"{name}: weight {i} is {variable.path}, file says {stored_name}")

    def forward(arrays):
        layer.set_weights([arrays[("w", i)] for i in range(len(weights64))])
        call_inputs = [tf.constant(arrays.get(("x", i), inputs64[i])) for i in range(len(inputs64))]
        return [o.numpy() for o in as_output_list(call_layer(layer, call_inputs, call_args))]

    def loss_fn(arrays):
        outs = forward(arrays)
        return float(sum(np.sum(outs[i] * loss_weights[i]) for i in loss_weights))

    arrays = {("w", i): w for i, w in enumerate(weights64)}
    arrays.update({("x", i): x for i, x in enumerate(inputs64) if is_float(x)})
    recomputed = forward(arrays)
    for i, o in enumerate(recomputed):
        check_close(f"{name}: outputs/{i}", o, outputs[i], 1e-5, 1e-4, problems)
    if "updated_weights" in f:
        updated = read_indexed_group(f["updated_weights"])
        layer.set_weights(weights64)
        forward(arrays)
        for i, w in enumerate(layer.get_weights()):
            check_close(f"{name}: updated_weights/{i}", w, updated[i], 1e-6, 1e-5, problems)

    stored = {("x", i): g for i, g in input_grads.items()}
    stored.update({("w", i): g for i, g in weight_grads.items()})
    finite_difference_checks(loss_fn, arrays, stored, rng, problems, name)


# Plain-numpy forward passes written from the semantics in the README (and the notes in each
# file).  --verify compares them with what Keras stored, so the documented semantics (gate
# order, padding split, pooling divisor, biased variance, mask convention...) are themselves
# checked against real Keras, not just asserted.


def np_activation(name, x):
    if name in (None, "linear"):
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        return np_softmax(x)
    raise ValueError(f"np_activation: no reference for {name}")


def np_softmax(x, axis=-1):
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def same_or_valid(size, kernel, stride, padding, dilation=1):
    """Output size and (before, after) padding, Keras/TF rules (a dilated kernel spans
    (kernel - 1) * dilation + 1 cells)."""
    extent = (kernel - 1) * dilation + 1
    if padding == "valid":
        return (size - extent) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + extent - size)
    return out, total // 2, total - total // 2


def np_windows(x, kernel, strides, padding, fill, dilation=(1, 1)):
    """Yields (i, j, window, real-cell mask) over an NHWC input padded with `fill`."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilation
    oh, top, bottom = same_or_valid(x.shape[1], kh, sh, padding, dh)
    ow, left, right = same_or_valid(x.shape[2], kw, sw, padding, dw)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    real = np.pad(np.ones(x.shape[1:3]), ((top, bottom), (left, right)))
    for i in range(oh):
        for j in range(ow):
            rows = slice(i * sh, i * sh + (kh - 1) * dh + 1, dh)
            cols = slice(j * sw, j * sw + (kw - 1) * dw + 1, dw)
            yield i, j, padded[:, rows, cols, :], real[rows, cols]


def np_conv2d(x, kernel, bias, strides, padding, dilation=(1, 1), groups=1):
    """Output channel block g reads input channel block g only (Keras groups)."""
    oh = same_or_valid(x.shape[1], kernel.shape[0], strides[0], padding, dilation[0])[0]
    ow = same_or_valid(x.shape[2], kernel.shape[1], strides[1], padding, dilation[1])[0]
    cin, cout = kernel.shape[2], kernel.shape[3] // groups
    out = np.zeros((x.shape[0], oh, ow, kernel.shape[3]))
    for i, j, window, _ in np_windows(x, kernel.shape[:2], strides, padding, 0.0, dilation):
        for g in range(groups):
            out[:, i, j, g * cout:(g + 1) * cout] = np.einsum(
                "nhwc,hwco->no", window[..., g * cin:(g + 1) * cin],
                kernel[..., g * cout:(g + 1) * cout])
    return out if bias is None else out + bias


def np_depthwise_conv2d(x, kernel, bias, strides, padding, dilation):
    """Input channel c with its own multiplier filters: outputs c * multiplier + m."""
    oh = same_or_valid(x.shape[1], kernel.shape[0], strides[0], padding, dilation[0])[0]
    ow = same_or_valid(x.shape[2], kernel.shape[1], strides[1], padding, dilation[1])[0]
    cin, multiplier = kernel.shape[2], kernel.shape[3]
    out = np.zeros((x.shape[0], oh, ow, cin, multiplier))
    for i, j, window, _ in np_windows(x, kernel.shape[:2], strides, padding, 0.0, dilation):
        out[:, i, j] = np.einsum("nhwc,hwcm->ncm", window, kernel)
    out = out.reshape(x.shape[0], oh, ow, cin * multiplier)
    return out if bias is None else out + bias


def np_pool(x, kernel, strides, padding, mode):
    oh = same_or_valid(x.shape[1], kernel[0], strides[0], padding)[0]
    ow = same_or_valid(x.shape[2], kernel[1], strides[1], padding)[0]
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    fill = -np.inf if mode == "max" else 0.0
    for i, j, window, real in np_windows(x, kernel, strides, padding, fill):
        if mode == "max":
            out[:, i, j, :] = window.max(axis=(1, 2))
        else:
            out[:, i, j, :] = window.sum(axis=(1, 2)) / real.sum()
    return out


def np_gru(x, kernel, recurrent_kernel, bias, h, reset_after=True, go_backwards=False):
    """Sequence in processing order (reversed with go_backwards, as Keras returns it), state."""
    units = recurrent_kernel.shape[0]
    recurrent_z_r, recurrent_h = recurrent_kernel[:, : 2 * units], recurrent_kernel[:, 2 * units:]
    sequence = []
    steps = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    for t in steps:
        if reset_after:
            xz, xr, xh = np.split(x[:, t] @ kernel + bias[0], 3, axis=-1)
            hz, hr, hh = np.split(h @ recurrent_kernel + bias[1], 3, axis=-1)
        else:
            xz, xr, xh = np.split(x[:, t] @ kernel + bias, 3, axis=-1)
            hz, hr = np.split(h @ recurrent_z_r, 2, axis=-1)
        z = np_activation("sigmoid", xz + hz)
        r = np_activation("sigmoid", xr + hr)
        if reset_after:
            candidate = np.tanh(xh + r * hh)
        else:
            candidate = np.tanh(xh + (r * h) @ recurrent_h)
        h = z * h + (1.0 - z) * candidate
        sequence.append(h)
    assert h.shape[-1] == units
    return np.stack(sequence, axis=1), h


def np_merge(mode, a, b):
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    if mode == "ave":
        return (a + b) / 2
    raise ValueError(f"np_merge: no reference for {mode}")


def np_causal_allowed(tq, tv):
    return np.arange(tv)[None, :] <= np.arange(tq)[:, None]


def np_attention(query, value, key, scale, causal):
    scores = query @ np.swapaxes(key, -1, -2)
    if scale is not None:
        scores = scores * scale
    if causal:
        scores = np.where(np_causal_allowed(*scores.shape[-2:]), scores, scores - 1e9)
    weights = np_softmax(scores)
    return weights @ value, weights


def np_multi_head_attention(query, value, key, w, causal):
    q = np.einsum("btd,dnh->btnh", query, w[0]) + w[1]
    k = np.einsum("bsd,dnh->bsnh", key, w[2]) + w[3]
    v = np.einsum("bsd,dnh->bsnh", value, w[4]) + w[5]
    key_dim = q.shape[-1]
    scores = np.einsum("btnh,bsnh->bnts", q / np.sqrt(key_dim), k)
    if causal:
        scores = np.where(np_causal_allowed(*scores.shape[-2:]), scores, -1e9)
    probabilities = np_softmax(scores)
    context = np.einsum("bnts,bsnh->btnh", probabilities, v)
    return np.einsum("btnh,nhd->btd", context, w[6]) + w[7], probabilities


def numpy_reference(layer, config, call_args, x, w):
    """Outputs (and for BatchNormalization training, the updated weights) from plain numpy."""
    if layer == "Dense":
        return [np_activation(config["activation"], x[0] @ w[0] + (w[1] if len(w) > 1 else 0))]
    if layer == "Conv2D":
        return [np_conv2d(x[0], w[0], w[1] if len(w) > 1 else None, config["strides"],
                          config["padding"], config["dilation_rate"], config["groups"])]
    if layer == "DepthwiseConv2D":
        return [np_depthwise_conv2d(x[0], w[0], w[1] if len(w) > 1 else None, config["strides"],
                                    config["padding"], config["dilation_rate"])]
    if layer in ("MaxPooling2D", "AveragePooling2D"):
        mode = "max" if layer == "MaxPooling2D" else "average"
        return [np_pool(x[0], config["pool_size"], config["strides"], config["padding"], mode)]
    if layer == "GlobalAveragePooling2D":
        return [x[0].mean(axis=(1, 2))]
    if layer == "Activation":
        return [np_activation(config["activation"], x[0])]
    if layer == "Softmax":
        return [np_softmax(x[0], axis=config["axis"])]
    if layer == "Embedding":
        return [w[0][x[0]]]
    if layer == "LayerNormalization":
        mean = x[0].mean(axis=-1, keepdims=True)
        variance = x[0].var(axis=-1, keepdims=True)
        return [(x[0] - mean) / np.sqrt(variance + config["epsilon"]) * w[0] + w[1]]
    if layer == "BatchNormalization":
        gamma = w[0] if config["scale"] else 1.0
        beta, moving_mean, moving_variance = w[-3], w[-2], w[-1]
        if call_args.get("training"):
            mean, variance = x[0].mean(axis=(0, 1, 2)), x[0].var(axis=(0, 1, 2))  # biased
            momentum = config["momentum"]
            updated = list(w[:-2]) + [moving_mean * momentum + mean * (1 - momentum),
                                      moving_variance * momentum + variance * (1 - momentum)]
        else:
            mean, variance, updated = moving_mean, moving_variance, None
        out = (x[0] - mean) / np.sqrt(variance + config["epsilon"]) * gamma + beta
        return [out] if updated is None else [out, updated]
    if layer == "GRU":
        h0 = x[1] if len(x) > 1 else np.zeros((x[0].shape[0], config["units"]))
        return list(np_gru(x[0], w[0], w[1], w[2], h0, config["reset_after"],
                           config["go_backwards"]))
    if layer == "Bidirectional":
        gru = config["layer"]["config"]
        zeros = np.zeros((x[0].shape[0], gru["units"]))
        h0_forward, h0_backward = (x[1], x[2]) if len(x) > 1 else (zeros, zeros)
        seq, state = np_gru(x[0], *w[:3], h0_forward, gru["reset_after"], False)
        seq_back, state_back = np_gru(x[0], *w[3:], h0_backward, gru["reset_after"], True)
        if gru["return_sequences"]:
            out = np_merge(config["merge_mode"], seq, seq_back[:, ::-1])
        else:
            out = np_merge(config["merge_mode"], state, state_back)
        return [out, state, state_back] if gru["return_state"] else [out]
    if layer == "Attention":
        key = x[2] if len(x) > 2 else x[1]
        out, weights = np_attention(x[0], x[1], key, w[0] if w else None,
                                    call_args.get("use_causal_mask", False))
        return [out, weights] if call_args.get("return_attention_scores") else [out]
    if layer == "MultiHeadAttention":
        value = x[1] if len(x) > 1 else x[0]
        key = x[2] if len(x) > 2 else value
        out, probabilities = np_multi_head_attention(x[0], value, key, w,
                                                     call_args.get("use_causal_mask", False))
        return [out, probabilities] if call_args.get("return_attention_scores") else [out]
    raise ValueError(f"numpy_reference: no reference for {layer}")


def verify_numpy_reference(f, problems):
    name = f.attrs["case"]
    inputs = read_indexed_group(f["inputs"])
    x = [inputs[i].astype(np.float64) if is_float(inputs[i]) else inputs[i]
         for i in range(len(inputs))]
    weights = read_indexed_group(f["weights"])
    w = [weights[i].astype(np.float64) for i in range(len(weights))]
    outputs = read_indexed_group(f["outputs"])
    result = numpy_reference(f.attrs["layer"], json.loads(f.attrs["config"]),
                             json.loads(f.attrs["call_args"]), x, w)
    if f.attrs["layer"] == "BatchNormalization" and len(result) == 2:
        updated = read_indexed_group(f["updated_weights"])
        for i, value in enumerate(result.pop()):
            check_close(f"{name}: numpy updated_weights/{i}", value, updated[i], 1e-6, 1e-5,
                        problems)
    if len(result) != len(outputs):
        problems.append(f"{name}: numpy reference gives {len(result)} outputs, file {len(outputs)}")
    for i, value in enumerate(result):
        check_close(f"{name}: numpy outputs/{i}", value, outputs[i], 1e-5, 1e-4, problems)


def verify_masked_loss_file(f, rng, problems):
    logits = f["inputs/0"][()].astype(np.float64)
    targets = f["inputs/1"][()]

    def loss_fn(arrays):
        per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets, logits=arrays["logits"]
        ).numpy()
        mask = (targets != 0).astype(np.float64)
        return float(np.sum(per_token * mask) / np.sum(mask))

    check_close("masked loss: outputs/0", loss_fn({"logits": logits}), f["outputs/0"][()],
                1e-6, 1e-5, problems)
    finite_difference_checks(loss_fn, {"logits": logits}, {"logits": f["grads/inputs/0"][()]},
                             rng, problems, "masked loss")


def numpy_mlp_loss_and_grads(weights, x, y):
    """Float64 reference for Dense(4, relu) -> Dense(3) with MSE, written out by hand."""
    w1, b1, w2, b2 = weights
    pre = x @ w1 + b1
    hidden = np.maximum(pre, 0.0)
    prediction = hidden @ w2 + b2
    diff = prediction - y
    loss = np.mean(diff**2)
    d_prediction = 2.0 * diff / diff.size
    d_w2 = hidden.T @ d_prediction
    d_b2 = d_prediction.sum(axis=0)
    d_pre = (d_prediction @ w2.T) * (pre > 0)
    return loss, [x.T @ d_pre, d_pre.sum(axis=0), d_w2, d_b2]


def verify_optimizer_file(f, problems):
    name = f.attrs["case"]
    config = json.loads(f.attrs["config"])["optimizer"]
    x = f["inputs/0"][()].astype(np.float64)
    y = f["inputs/1"][()].astype(np.float64)
    weights = [f["weights"][str(i)][()].astype(np.float64) for i in range(4)]
    loss, grads = numpy_mlp_loss_and_grads(weights, x, y)
    check_close(f"{name}: outputs/0", loss, f["outputs/0"][()], 1e-6, 1e-5, problems)
    for i, g in enumerate(grads):
        check_close(f"{name}: grads/weights/{i}", g, f["grads/weights"][str(i)][()],
                    1e-6, 1e-4, problems)
    first = [np.zeros_like(w) for w in weights]
    second = [np.zeros_like(w) for w in weights]
    for step in range(1, 4):
        loss, grads = numpy_mlp_loss_and_grads(weights, x, y)
        check_close(f"{name}: step_losses[{step - 1}]", loss, f["step_losses"][step - 1],
                    1e-6, 1e-5, problems)
        for i, g in enumerate(grads):
            if f.attrs["layer"] == "Adam":
                lr, b1, b2, eps = (config["learning_rate"], config["beta_1"], config["beta_2"],
                                   config["epsilon"])
                first[i] = b1 * first[i] + (1 - b1) * g
                second[i] = b2 * second[i] + (1 - b2) * g * g
                lr_t = lr * np.sqrt(1 - b2**step) / (1 - b1**step)
                weights[i] = weights[i] - lr_t * first[i] / (np.sqrt(second[i]) + eps)
            else:
                lr, momentum = config["learning_rate"], config["momentum"]
                first[i] = momentum * first[i] - lr * g
                weights[i] = weights[i] + first[i]
        for i, w in enumerate(weights):
            check_close(f"{name}: steps/{step}/{i}", w, f["steps"][str(step)][str(i)][()],
                        1e-6, 1e-4, problems)


def verify_decoder_file(f, rng, problems):
    model = build_decoder("float64")
    tokens = f["inputs/0"][()]
    features = f["inputs/1"][()].astype(np.float64)
    weights = read_indexed_group(f["weights"])
    loss_weight = f["loss_weights/0"][()]
    for i, variable in enumerate(model.weights):
        if variable.path != f["weights"][str(i)].attrs["name"]:
            problems.append(f"decoder: weight {i} is {variable.path}")

    def forward(arrays):
        model.set_weights([arrays[("w", i)] for i in range(len(weights))])
        return model([tf.constant(tokens), tf.constant(arrays[("x", 1)])]).numpy()

    arrays = {("w", i): w.astype(np.float64) for i, w in weights.items()}
    arrays[("x", 1)] = features
    check_close("decoder: outputs/0", forward(arrays), f["outputs/0"][()], 1e-5, 1e-4, problems)
    w = [weights[i].astype(np.float64) for i in range(len(weights))]
    zero_state = np.zeros((tokens.shape[0], w[2].shape[0]))
    gru_output, _ = np_gru(w[0][tokens], w[1], w[2], w[3], zero_state)
    context, _ = np_attention(gru_output, features, features, None, False)
    added = gru_output + context
    mean, variance = added.mean(axis=-1, keepdims=True), added.var(axis=-1, keepdims=True)
    normed = (added - mean) / np.sqrt(variance + 1e-3) * w[4] + w[5]
    check_close("decoder: numpy outputs/0", normed @ w[6] + w[7], f["outputs/0"][()],
                1e-5, 1e-4, problems)
    stored = {("x", 1): f["grads/inputs/1"][()]}
    stored.update({("w", i): g for i, g in read_indexed_group(f["grads/weights"]).items()})
    finite_difference_checks(
        lambda a: float(np.sum(forward(a) * loss_weight)), arrays, stored, rng, problems, "decoder"
    )


def check_layout(f, problems):
    """The contract every file honours, whatever the case."""
    name = f.attrs.get("case", "?")
    for attribute in ("case", "layer", "config", "tensorflow_version", "keras_version",
                      "numpy_version", "note"):
        if attribute not in f.attrs:
            problems.append(f"{name}: missing root attribute {attribute}")
    for group in ("inputs", "weights", "outputs", "loss_weights", "grads"):
        if group not in f:
            problems.append(f"{name}: missing group {group}")
    for key, dataset in read_indexed_group(f["outputs"]).items():
        if key in read_indexed_group(f["loss_weights"]):
            if f["loss_weights"][str(key)].shape != dataset.shape:
                problems.append(f"{name}: loss_weights/{key} shape differs from outputs/{key}")
    for key, value in read_indexed_group(f["inputs"]).items():
        if not is_float(value) and value.dtype != np.int32:
            problems.append(f"{name}: inputs/{key} has dtype {value.dtype}")
    for dataset_name in f["weights"]:
        if "name" not in f["weights"][dataset_name].attrs:
            problems.append(f"{name}: weights/{dataset_name} has no name attribute")


def verify(out_dir, names):
    problems = []
    for name in names:
        path = os.path.join(out_dir, f"{name}.h5")
        if not os.path.exists(path):
            problems.append(f"{name}: {path} missing")
            continue
        rng = np.random.default_rng(seed_for(name) + 1)
        before = len(problems)
        with h5py.File(path, "r") as f:
            check_layout(f, problems)
            if name == "sparse_categorical_crossentropy_masked":
                verify_masked_loss_file(f, rng, problems)
            elif name in ("adam_three_steps", "sgd_momentum_three_steps"):
                verify_optimizer_file(f, problems)
            elif name == "captioner_decoder_step":
                verify_decoder_file(f, rng, problems)
            else:
                verify_layer_file(f, rng, problems)
                verify_numpy_reference(f, problems)
        status = "ok" if len(problems) == before else "FAILED"
        print(f"verify {name}: {status} ({os.path.getsize(path)} bytes)")
    return problems


# --------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT_DIR, help="output folder")
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--verify", action="store_true",
                        help="do not generate; re-open the files and check them in float64")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    args = parser.parse_args()

    names = all_case_names()
    if args.list:
        print("\n".join(names))
        return 0
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"unknown case(s): {', '.join(unknown)}")
        names = wanted

    if args.verify:
        problems = verify(args.out, names)
        for problem in problems:
            print("PROBLEM:", problem)
        print(f"{len(names)} files checked, {len(problems)} problem(s)")
        return 1 if problems else 0

    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name in names:
        path = generate(name, args.out)
        size = os.path.getsize(path)
        total += size
        print(f"wrote {os.path.relpath(path)} ({size} bytes)")
    print(f"{len(names)} fixtures, {total} bytes in total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
