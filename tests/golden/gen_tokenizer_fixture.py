#!/usr/bin/env python3
"""Writes tests/data/tokenizer_fixture.json: what real Keras TextVectorization does with the
captioning notebook's configuration, so tests/test_tokenizer.cpp can demand exact equality.

Both Keras implementations are run (tf.keras from the tf-keras package, and Keras 3) and the
script refuses to write a fixture if they disagree.

Run from anywhere:  python3 tests/golden/gen_tokenizer_fixture.py
Needs: tensorflow, tf-keras, keras (3.x).
"""
import json
import os
import string
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import keras  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "tokenizer_fixture.json")


def notebook_standardize(inputs):
    # Verbatim from the notebook. Note ",-/" inside the class is a range: "," "-" "." "/".
    inputs = tf.strings.lower(inputs)
    return tf.strings.regex_replace(
        inputs, r"[!\"#$%&\(\)\*\+.,-/:;=?@\[\\\]^_`{|}~]?", ""
    )


def with_markers(caption):
    return "<start> " + caption + " <end>"


# Hand-written captions: upper case, hyphens, apostrophes, punctuation glued to words, runs of
# whitespace (tabs, newlines, vertical tab, form feed, carriage return), non-ASCII UTF-8, and
# words whose counts tie so that the tie-break order decides their ids.
HANDWRITTEN = [
    "A man riding a wave on top of a surfboard.",
    "Two giraffes standing in a grassy field, next to trees!",
    "A KITCHEN with stainless-steel appliances; a white fridge.",
    "The cat's on the laptop's keyboard?",
    "People don't walk on-the-go (mostly)...",
    "A 10-year-old boy in a t-shirt & jeans #1",
    "An e-mail @ 5:30pm: $20 = 50% off [sale] {now} ~ever~ a^b a_b a|b",
    "  leading   and trailing\twhitespace\nwith\vodd\fbreaks\rhere  ",
    "Caf\u00e9 DU MONDE \u00c9COLE na\u00efve \u2014 dash",
    "zebra yak xenon walrus vulture",
    "zebra yak xenon walrus vulture",
    "umbrella toucan swan rabbit quail",
    "umbrella toucan swan rabbit quail",
    "apple Apple APPLE apple's",
    "<b>bold</b> tags <keep> angle brackets",
    "'quoted' \"double quoted\" `backticks`",
    "a b c d e f g h i j k l m n o p q r s t",
    "Dog dog DOG cat CAT",
    "mouse Mouse horse",
    "horse pig pig",
]


def shapes_captions():
    # A few captions in the style of the embedded shapes dataset.
    sizes = ["small", "large"]
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    shapes = ["circle", "square", "triangle"]
    out = []
    for i in range(12):
        a = (sizes[i % 2], colours[i % 6], shapes[i % 3])
        b = (sizes[(i + 1) % 2], colours[(i + 2) % 6], shapes[(i + 1) % 3])
        out.append("a %s %s %s to the left of a %s %s %s" % (a + b))
        out.append("There is a %s %s %s." % a)
    return out


CORPUS = HANDWRITTEN + shapes_captions()

UNSEEN = [
    "A never-seen-before QUOKKA riding a surfboard!",
    "",
    "   ",
    "<start> <end>",
    "a a a a a a a a a a a a a a a a a a a a",
    "[UNK] unk UNK",
    "Caf\u00e9 caf\u00e9 CAF\u00c9",
    "zebra\tyak\nxenon",
]

CONFIGS = [
    # max_tokens small enough to cut through a tie group; sequence shorter than some captions.
    {"name": "truncated", "max_tokens": 30, "sequence_length": 12},
    {"name": "full", "max_tokens": None, "sequence_length": 24},
    {"name": "tiny", "max_tokens": 3, "sequence_length": 5},
]

STANDARDIZE_PROBES = [
    "".join(chr(c) for c in range(32, 127)),
    "On-The-Go, Isn't It? <START> [UNK] a\\b",
    "Caf\u00e9 \u00c9COLE \u0130stanbul \u00df",
]


def make_layer(module, config):
    return module.layers.TextVectorization(
        max_tokens=config["max_tokens"],
        standardize=notebook_standardize,
        output_sequence_length=config["sequence_length"],
    )


def run(module, config, texts, unseen):
    layer = make_layer(module, config)
    layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(7))
    vocabulary = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in layer.get_vocabulary()]
    encoded = [[int(v) for v in row] for row in layer(tf.constant(texts)).numpy()]
    encoded_unseen = [[int(v) for v in row] for row in layer(tf.constant(unseen)).numpy()]
    return {"vocabulary": vocabulary, "encoded": encoded, "encoded_unseen": encoded_unseen}


def main():
    texts = [with_markers(c) for c in CORPUS]
    configs = []
    for config in CONFIGS:
        from_tf_keras = run(tf_keras, config, texts, UNSEEN)
        from_keras3 = run(keras, config, texts, UNSEEN)
        if from_tf_keras != from_keras3:
            sys.exit("tf-keras and keras 3 disagree for config %s" % config["name"])
        configs.append({
            "name": config["name"],
            "max_tokens": config["max_tokens"] or 0,  # 0 = no limit (Keras None)
            "sequence_length": config["sequence_length"],
            **from_tf_keras,
        })

    standardized = [notebook_standardize(tf.constant(p)).numpy().decode("utf-8")
                    for p in STANDARDIZE_PROBES]
    split = [[t.decode("utf-8") for t in tf.strings.split(tf.constant(p)).numpy()]
             for p in HANDWRITTEN]

    fixture = {
        "generator": "tests/golden/gen_tokenizer_fixture.py",
        "versions": {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__,
                     "keras": keras.__version__},
        "note": "captions are adapted with markers: '<start> ' + caption + ' <end>'; "
                "max_tokens 0 means no limit",
        "corpus": CORPUS,
        "corpus_with_markers": texts,
        "unseen": UNSEEN,
        "configs": configs,
        "standardize_probes": [{"input": p, "output": s}
                               for p, s in zip(STANDARDIZE_PROBES, standardized)],
        "split_probes": [{"input": p, "tokens": t} for p, t in zip(HANDWRITTEN, split)],
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))
    for c in configs:
        print(c["name"], c["vocabulary"][:12])


if __name__ == "__main__":
    main()
