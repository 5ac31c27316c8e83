#!/usr/bin/env python3
"""Keras weight files for tests/test_keras_weights.cpp, written by REAL Keras (and h5py).

Writes into tests/data/keras/:
  tf_keras_legacy.h5          tf_keras (Keras 2) model.save_weights("x.h5") of the main model
  tf_keras_full_model.h5      tf_keras model.save("x.h5") of a small model (weights under
                              model_weights/, plus model_config)
  keras3.weights.h5           keras 3 model.save_weights() of the main model, same weights
  keras3_nested.weights.h5    keras 3: a nested Functional model, MultiHeadAttention, eleven
                              Dense layers, and a compiled model whose optimizer state is saved
  chunked_layer_names.h5      tf_keras legacy file whose layer_names exceed HDF5's 64 KiB
                              attribute limit, so tf_keras splits it into layer_names0/1
  official_style.h5           h5py imitation of the official ImageNet file: TF-slim layer names,
                              fixed-length byte-string attributes, weightless layers, and
                              layer_names not in alphabetical order
  expected.json               what the C++ reader must return for each file above (layout below),
                              taken from the Keras models themselves
and into tests/data/bad_h5/ a corpus of broken files (see write_bad_files).

The "main" model contains Conv2D with and without bias, BatchNormalization(scale=False), ReLU,
Embedding, GRU, LayerNormalization, Concatenate and Dense. Every weight is replaced by seeded
random numbers; the same numbers go into the tf_keras and the keras 3 model. The nested Keras 3
model adds a nested Functional model, MultiHeadAttention (sub-layers), eleven Dense layers (so
Keras 3 writes dense, ..., dense_10 and only a natural sort orders them) and optimizer state.

Ground truth in expected.json comes from the models, never from reading the files back:
  - legacy: model.layers order, layer.weights names (tf_keras's weight_names) and values;
  - keras 3: Keras's own save walk (keras.src.saving.saving_lib._save_state) replayed into a
    recording store, which yields every variable's group path, key and value in the order Keras
    writes them, plus each layer's real name.

expected.json: {"<fixture>": {"file", "format", "keras_version", "backend",
  "layers": [{"layer_name", "group_path", "keras3_class", "keras3_index",
              "weights": [{"name", "shape", "values"}]}],   <- only layers with weights, in the
                                                               order the reader must return them
  "model_order_group_paths": [...]   (keras 3) the layers' group paths in model.layers order
  "all_layer_names": [...]}}         (legacy) every layer_names entry, weightless ones included
Values are float32 numbers written as exact decimal doubles.

Usage:  python3 tests/golden/gen_keras_weight_files.py     (needs tensorflow-cpu, tf_keras,
        keras 3, h5py, numpy; versions in tests/golden/requirements.txt). Re-running gives the
        same contents (HDF5 files are not byte-identical across runs).
"""

import json
import os
import re
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import keras  # noqa: E402
import tf_keras  # noqa: E402
from keras.src.saving import saving_lib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
KERAS_DIR = os.path.normpath(os.path.join(HERE, "..", "data", "keras"))
BAD_DIR = os.path.normpath(os.path.join(HERE, "..", "data", "bad_h5"))


# --------------------------------------------------------------------------------------------
# Models


def build_main_model(k):
    """The same functional model in tf_keras (k = tf_keras) or keras 3 (k = keras)."""
    layers = k.layers
    image = k.Input((5, 5, 2), name="image")
    x = layers.Conv2D(3, 3, use_bias=False, name="stem_conv")(image)
    x = layers.BatchNormalization(scale=False)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(2, 1)(x)  # with bias; auto-named "conv2d" although it is the 2nd Conv2D
    x = layers.GlobalAveragePooling2D()(x)
    tokens = k.Input((4,), dtype="int32", name="tokens")
    t = layers.Embedding(7, 3)(tokens)
    t = layers.GRU(2)(t)
    t = layers.LayerNormalization()(t)
    h = layers.Concatenate()([x, t])
    h = layers.Dense(2)(h)
    out = layers.Dense(3, use_bias=False, name="logits")(h)
    return k.Model([image, tokens], out)


def build_full_save_model(k):
    inputs = k.Input((3, 3, 1), name="pixels")
    x = k.layers.Conv2D(2, 2, use_bias=False, name="conv")(inputs)
    x = k.layers.BatchNormalization(scale=False, name="conv_bn")(x)
    x = k.layers.Flatten()(x)
    out = k.layers.Dense(2, name="head")(x)
    return k.Model(inputs, out)


def build_nested_keras3_model():
    inner_in = keras.Input((4,), name="inner_in")
    h = keras.layers.Dense(3, name="enc_dense")(inner_in)
    encoder = keras.Model(inner_in, h, name="encoder")
    features = keras.Input((4,), name="features")
    sequence = keras.Input((2, 2), name="sequence")
    attended = keras.layers.MultiHeadAttention(num_heads=1, key_dim=1, name="attention")(
        sequence, sequence)
    # Eleven Dense layers: Keras 3 names their groups dense, dense_1, ..., dense_10, and only a
    # natural sort puts dense_10 after dense_9.
    z = features
    for _ in range(11):
        z = keras.layers.Dense(1, use_bias=False)(z)
    model = keras.Model([features, sequence], [encoder(features), attended, z])
    model.compile(optimizer="adam", loss="mse")
    # Building the optimizer makes save_weights write optimizer/vars/* too (which the reader must
    # skip); one variable's worth of Adam state is enough for that and keeps the file small.
    model.optimizer.build(model.trainable_variables[:1])
    return model


def build_chunked_model():
    """Enough name bytes that tf_keras must split layer_names: it stores the names as one
    fixed-length byte array (count x longest name) and splits it once that exceeds 64512 bytes.
    The long name sits on a weightless layer so the file stays small (a name is stored once per
    group and once per weight name)."""
    long_name = "a_layer_with_a_very_long_name_" + "".join(
        chr(ord("a") + (j * 7) % 26) for j in range(13000))
    inputs = tf_keras.Input((2,), name="x")
    h = tf_keras.layers.Dense(3, name="first_dense")(inputs)
    h = tf_keras.layers.Activation("linear", name=long_name)(h)
    h = tf_keras.layers.Dense(2, name="second_dense")(h)
    h = tf_keras.layers.Dense(1, name="third_dense")(h)
    return tf_keras.Model(inputs, h)


def randomize_weights(model, rng):
    for layer in model.layers:
        new_weights = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            if "moving_variance" in weight.name:
                value = rng.uniform(0.5, 2.0, shape)
            else:
                value = rng.standard_normal(shape)
            new_weights.append(value.astype(np.float32))
        if new_weights:
            layer.set_weights(new_weights)


def copy_weights_by_position(source, target):
    assert len(source.layers) == len(target.layers)
    for a, b in zip(source.layers, target.layers):
        assert type(a).__name__ == type(b).__name__, (a.name, b.name)
        assert a.name == b.name, (a.name, b.name)
        b.set_weights(a.get_weights())


# --------------------------------------------------------------------------------------------
# Ground truth


class KerasSaveRecorder(saving_lib.H5IOStore):
    """Stands in for the .weights.h5 store: records what Keras would write, in order."""

    def __init__(self):  # no file
        self.records = []  # (group path, key, value)
        self.names = {}  # group path -> the saveable's name

    def __bool__(self):  # H5IOStore asks its open file; a recorder is always "open"
        return True

    def make(self, path, metadata=None):
        self.names[path] = (metadata or {}).get("name")
        recorder = self

        class Entry:
            def __setitem__(self, key, value):
                recorder.records.append((path, str(key), keras.ops.convert_to_numpy(value)))

        return Entry()


def natural_key(text):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part != ""]


def split_keras3_path(path):
    """'layers/functional/layers/dense' -> layer group; 'layers/gru/cell' -> ('layers/gru',
    'cell/'): the layer is the component right after the last 'layers' container."""
    parts = path.split("/")
    last = max(i for i, p in enumerate(parts) if p in ("layers", "_layer_checkpoint_dependencies"))
    layer_group = "/".join(parts[:last + 2])
    rest = "/".join(parts[last + 2:])
    return layer_group, (rest + "/" if rest else "")


def keras3_expected(model):
    recorder = KerasSaveRecorder()
    saving_lib._save_state(model, weights_store=recorder, assets_store=None, inner_path="",
                           visited_saveables=set())
    layers = {}  # layer group -> list of (weight name, value), in Keras's save order
    model_order = []
    for path, key, value in recorder.records:
        if not path.startswith(("layers/", "_layer_checkpoint_dependencies/")):
            continue  # optimizer and other non-layer state
        layer_group, sub_path = split_keras3_path(path)
        if layer_group not in layers:
            layers[layer_group] = []
            model_order.append(layer_group)
        layers[layer_group].append((sub_path + "vars/" + key, value))
    api_order = sorted(model_order, key=lambda p: [natural_key(c) for c in p.split("/")])
    entries = []
    for group in api_order:
        last = group.split("/")[-1]
        match = re.fullmatch(r"(.+)_(\d+)", last)
        keras3_class, index = (match.group(1), int(match.group(2))) if match else (last, 0)
        entries.append(dict(layer_name=recorder.names[group], group_path=group,
                            keras3_class=keras3_class, keras3_index=index,
                            weights=layers[group]))
    return entries, model_order


def legacy_expected(model, weights_root=""):
    entries = []
    for layer in model.layers:
        if not layer.weights:
            continue
        group = f"{weights_root}/{layer.name}" if weights_root else layer.name
        entries.append(dict(layer_name=layer.name, group_path=group, keras3_class="",
                            keras3_index=-1,
                            weights=[(w.name, np.array(v)) for w, v in
                                     zip(layer.weights, layer.get_weights())]))
    return entries


def write_expected(expected, name, file_name, format_name, entries, keras_version="", backend="",
                   model_order=None, all_layer_names=None):
    fixture = dict(file=file_name, format=format_name, keras_version=keras_version,
                   backend=backend, layers=[])
    for e in entries:
        fixture["layers"].append(dict(
            layer_name=e["layer_name"], group_path=e["group_path"],
            keras3_class=e["keras3_class"], keras3_index=e["keras3_index"],
            # float(np.float32) is exact as a double, and JSON keeps doubles exactly.
            weights=[dict(name=w_name, shape=list(value.shape),
                          values=[float(v) for v in value.astype(np.float32).ravel()])
                     for w_name, value in e["weights"]]))
    if model_order is not None:
        fixture["model_order_group_paths"] = model_order
    if all_layer_names is not None:
        fixture["all_layer_names"] = all_layer_names
    expected[name] = fixture


# --------------------------------------------------------------------------------------------
# The h5py-made files


OFFICIAL_STYLE_LAYERS = [
    # (layer name, [(weight name, shape)]) in layer_names order, deliberately not alphabetical
    ("input_1", []),
    ("Conv2d_1a_3x3", [("Conv2d_1a_3x3/kernel:0", (3, 3, 3, 4))]),
    ("Conv2d_1a_3x3_BatchNorm", [("Conv2d_1a_3x3_BatchNorm/beta:0", (4,)),
                                 ("Conv2d_1a_3x3_BatchNorm/moving_mean:0", (4,)),
                                 ("Conv2d_1a_3x3_BatchNorm/moving_variance:0", (4,))]),
    ("Conv2d_1a_3x3_Activation", []),
    ("Conv2d_2a_3x3", [("Conv2d_2a_3x3/kernel:0", (3, 3, 4, 2))]),
    ("Conv2d_2a_3x3_BatchNorm", [("Conv2d_2a_3x3_BatchNorm/beta:0", (2,)),
                                 ("Conv2d_2a_3x3_BatchNorm/moving_mean:0", (2,)),
                                 ("Conv2d_2a_3x3_BatchNorm/moving_variance:0", (2,))]),
    ("MaxPool_3a_3x3", []),
    ("Block35_1_Conv2d_1x1", [("Block35_1_Conv2d_1x1/kernel:0", (1, 1, 2, 2)),
                              ("Block35_1_Conv2d_1x1/bias:0", (2,))]),
    ("Block35_10_Conv2d_1x1", [("Block35_10_Conv2d_1x1/kernel:0", (1, 1, 2, 2)),
                               ("Block35_10_Conv2d_1x1/bias:0", (2,))]),
    ("Conv2d_7b_1x1", [("Conv2d_7b_1x1/kernel:0", (1, 1, 2, 3))]),
    ("Conv2d_7b_1x1_BatchNorm", [("Conv2d_7b_1x1_BatchNorm/beta:0", (3,)),
                                 ("Conv2d_7b_1x1_BatchNorm/moving_mean:0", (3,)),
                                 ("Conv2d_7b_1x1_BatchNorm/moving_variance:0", (3,))]),
]


def fixed_strings(values):
    """numpy 'S' array: h5py stores it as fixed-length, null-padded ASCII strings."""
    return np.array([v.encode("ascii") for v in values])


def write_official_style(path, rng):
    entries = []
    with h5py.File(path, "w", libver=("v108", "v108")) as f:
        f.attrs["layer_names"] = fixed_strings([name for name, _ in OFFICIAL_STYLE_LAYERS])
        f.attrs["backend"] = np.bytes_(b"tensorflow")
        f.attrs["keras_version"] = np.bytes_(b"2.1.5")
        for layer_name, weights in OFFICIAL_STYLE_LAYERS:
            g = f.create_group(layer_name)
            # Old Keras stored "no weights" as an empty list, which numpy turns into float64.
            g.attrs["weight_names"] = (fixed_strings([w for w, _ in weights]) if weights
                                       else np.zeros((0,), np.float64))
            values = []
            for weight_name, shape in weights:
                value = (rng.uniform(0.5, 2.0, shape) if "moving_variance" in weight_name
                         else rng.standard_normal(shape)).astype(np.float32)
                g.create_dataset(weight_name, data=value)
                values.append((weight_name, value))
            if values:
                entries.append(dict(layer_name=layer_name, group_path=layer_name,
                                    keras3_class="", keras3_index=-1, weights=values))
    return entries


def write_small_legacy(path, layers, skip_datasets=(), layer_names=None, skip_weight_names=()):
    """A minimal legacy file: layers = [(name, {weight_name: array})]."""
    with h5py.File(path, "w", libver=("v108", "v108")) as f:
        names = layer_names if layer_names is not None else [n for n, _ in layers]
        f.attrs["layer_names"] = fixed_strings(names)
        # Fixed-length strings: a variable-length one would add a 4 KiB global heap to the file.
        f.attrs["backend"] = np.bytes_(b"tensorflow")
        f.attrs["keras_version"] = np.bytes_(b"2.21.0")
        for layer_name, weights in layers:
            g = f.create_group(layer_name)
            if layer_name not in skip_weight_names:
                g.attrs["weight_names"] = fixed_strings(list(weights))
            for weight_name, value in weights.items():
                if weight_name not in skip_datasets:
                    g.create_dataset(weight_name, data=value)


def write_bad_files(rng):
    os.makedirs(BAD_DIR, exist_ok=True)
    dense = {"dense/kernel:0": rng.standard_normal((2, 3)).astype(np.float32),
             "dense/bias:0": rng.standard_normal((3,)).astype(np.float32)}

    # A valid legacy file, then its first half: HDF5 notices the end of file is missing.
    with tempfile.TemporaryDirectory() as tmp:
        whole = os.path.join(tmp, "whole.h5")
        write_small_legacy(whole, [("dense", dense)])
        data = open(whole, "rb").read()
    with open(os.path.join(BAD_DIR, "truncated.h5"), "wb") as f:
        f.write(data[:len(data) // 2])
    with open(os.path.join(BAD_DIR, "not_hdf5.h5"), "w") as f:
        f.write("This is a text file that only pretends to be HDF5.\n")
    open(os.path.join(BAD_DIR, "empty.h5"), "wb").close()
    # weight_names lists dense/bias:0, but the dataset is missing.
    write_small_legacy(os.path.join(BAD_DIR, "missing_dataset.h5"), [("dense", dense)],
                       skip_datasets=("dense/bias:0",))
    # A layer group without its weight_names attribute.
    write_small_legacy(os.path.join(BAD_DIR, "missing_weight_names.h5"), [("dense", dense)],
                       skip_weight_names=("dense",))
    # layer_names lists a layer that has no group.
    write_small_legacy(os.path.join(BAD_DIR, "missing_layer_group.h5"), [("dense", dense)],
                       layer_names=["dense", "ghost_layer"])
    # Valid HDF5 with weights in it, but neither layer_names nor a Keras 3 "layers" group.
    with h5py.File(os.path.join(BAD_DIR, "no_layer_names.h5"), "w", libver=("v108", "v108")) as f:
        f.create_dataset("dense/dense/kernel:0", data=dense["dense/kernel:0"])
        f.attrs["backend"] = np.bytes_(b"tensorflow")
    # A legacy weight that holds strings instead of numbers.
    with h5py.File(os.path.join(BAD_DIR, "string_weight.h5"), "w", libver=("v108", "v108")) as f:
        f.attrs["layer_names"] = fixed_strings(["dense"])
        g = f.create_group("dense")
        g.attrs["weight_names"] = fixed_strings(["dense/kernel:0"])
        g.create_dataset("dense/kernel:0", data=np.array([b"not", b"numbers"]))


# --------------------------------------------------------------------------------------------


def main():
    os.makedirs(KERAS_DIR, exist_ok=True)
    rng = np.random.default_rng(20240611)
    expected = {}

    # (a) + (b): the main model in tf_keras and keras 3, same weights.
    legacy_model = build_main_model(tf_keras)
    randomize_weights(legacy_model, rng)
    keras3_model = build_main_model(keras)
    copy_weights_by_position(legacy_model, keras3_model)

    legacy_model.save_weights(os.path.join(KERAS_DIR, "tf_keras_legacy.h5"))
    write_expected(expected, "tf_keras_legacy", "tf_keras_legacy.h5", "keras2-legacy",
                   legacy_expected(legacy_model), keras_version=tf_keras.__version__,
                   backend="tensorflow",
                   all_layer_names=[layer.name for layer in legacy_model.layers])

    keras3_model.save_weights(os.path.join(KERAS_DIR, "keras3.weights.h5"))
    entries, model_order = keras3_expected(keras3_model)
    write_expected(expected, "keras3", "keras3.weights.h5", "keras3", entries,
                   model_order=model_order)

    # model.save() of a small tf_keras model: weights under model_weights/.
    full = build_full_save_model(tf_keras)
    randomize_weights(full, rng)
    full.save(os.path.join(KERAS_DIR, "tf_keras_full_model.h5"))
    write_expected(expected, "tf_keras_full_model", "tf_keras_full_model.h5", "keras2-legacy",
                   legacy_expected(full, "model_weights"), keras_version=tf_keras.__version__,
                   backend="tensorflow", all_layer_names=[layer.name for layer in full.layers])

    # Keras 3 nesting, sub-layers and optimizer state.
    nested = build_nested_keras3_model()
    randomize_weights(nested, rng)
    nested.save_weights(os.path.join(KERAS_DIR, "keras3_nested.weights.h5"))
    entries, model_order = keras3_expected(nested)
    write_expected(expected, "keras3_nested", "keras3_nested.weights.h5", "keras3", entries,
                   model_order=model_order)

    # (c) layer_names split into chunks.
    chunked = build_chunked_model()
    randomize_weights(chunked, rng)
    chunked_path = os.path.join(KERAS_DIR, "chunked_layer_names.h5")
    chunked.save_weights(chunked_path)
    with h5py.File(chunked_path, "r") as f:
        assert "layer_names" not in f.attrs and "layer_names1" in f.attrs, \
            "tf_keras did not split layer_names; make the names longer"
    write_expected(expected, "chunked_layer_names", "chunked_layer_names.h5", "keras2-legacy",
                   legacy_expected(chunked), keras_version=tf_keras.__version__,
                   backend="tensorflow", all_layer_names=[layer.name for layer in chunked.layers])

    # (d) the official file's style, made with h5py.
    entries = write_official_style(os.path.join(KERAS_DIR, "official_style.h5"), rng)
    write_expected(expected, "official_style", "official_style.h5", "keras2-legacy", entries,
                   keras_version="2.1.5", backend="tensorflow",
                   all_layer_names=[name for name, _ in OFFICIAL_STYLE_LAYERS])

    with open(os.path.join(KERAS_DIR, "expected.json"), "w") as f:
        json.dump(expected, f, indent=None, separators=(",", ":"))
        f.write("\n")

    write_bad_files(rng)

    total = 0
    for directory in (KERAS_DIR, BAD_DIR):
        for name in sorted(os.listdir(directory)):
            size = os.path.getsize(os.path.join(directory, name))
            total += size
            print(f"{size:8d}  {os.path.relpath(os.path.join(directory, name), HERE)}")
    print(f"{total:8d}  total")


if __name__ == "__main__":
    main()
