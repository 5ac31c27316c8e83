#!/usr/bin/env python3
"""Writes tests/data/metrics_fixture.json: BLEU-1..4, ROUGE-L and CIDEr-D as pycocoevalcap computes
them (its Bleu, Rouge and Cider scorers, called directly on already tokenized captions), for
tests/test_caption_metrics.cpp, plus what pycocoevalcap's PTBTokenizer (Stanford CoreNLP, Java)
makes of a set of raw captions, for glimpse::coco_tokenize.

Run from anywhere:  python3 tests/golden/gen_metrics_fixture.py
Needs: pycocoevalcap (pip install pycocoevalcap) and, for the tokenizer part, java on the PATH.
"""
import json
import os
import random

import pycocoevalcap
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

try:
    from importlib.metadata import version
    PYCOCOEVALCAP_VERSION = version("pycocoevalcap")
except Exception:  # pragma: no cover
    PYCOCOEVALCAP_VERSION = "unknown"

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "metrics_fixture.json")

SIZES = ["small", "large"]
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange"]
SHAPES = ["circle", "square", "triangle"]
RELATIONS = ["to the left of", "to the right of", "above", "below"]
COCO_LIKE = [
    "a man riding a wave on top of a surfboard",
    "a man on a surfboard riding a large wave",
    "two giraffes standing in a grassy field next to trees",
    "a plate of food with broccoli and rice on a table",
    "a dog sitting on a couch next to a cat",
    "a kitchen with stainless steel appliances and a white fridge",
    "a group of people standing around a table with food",
    "a red double decker bus driving down a street",
]


def phrase(rng):
    return "a %s %s %s" % (rng.choice(SIZES), rng.choice(COLOURS), rng.choice(SHAPES))


def shapes_references(rng):
    a, b = phrase(rng), phrase(rng)
    relation = rng.choice(RELATIONS)
    variants = [
        "%s %s %s" % (a, relation, b),
        "there is %s %s %s" % (a, relation, b),
        "%s and %s" % (a, b),
        "%s and %s" % (b, a),
        "two shapes %s and %s" % (a, b),
    ]
    return variants[: rng.randint(1, 5)], (a, b, relation)


def perturb(rng, sentence):
    words = sentence.split()
    kind = rng.randrange(4)
    if kind == 0 and len(words) > 2:      # drop a word
        del words[rng.randrange(len(words))]
    elif kind == 1:                       # swap in a word no reference uses
        words[rng.randrange(len(words))] = rng.choice(["hexagon", "pink", "tiny", "star"])
    elif kind == 2:                       # repeat a stretch (exercises clipping)
        i = rng.randrange(len(words))
        words = words[: i + 1] + words[max(0, i - 2): i + 1] + words[i + 1:]
    else:                                 # truncate
        words = words[: max(1, len(words) // 2)]
    return " ".join(words)


def main_corpus():
    rng = random.Random(20240601)
    candidates, references = [], []
    for i in range(24):
        refs, (a, b, relation) = shapes_references(rng)
        if i % 6 == 0:
            candidate = refs[0]                                   # exact match
        elif i % 6 == 1:
            candidate = rng.choice(["a", "circle", "a red", "there is"])  # very short
        elif i % 6 == 2:
            candidate = "%s %s %s and %s and %s" % (a, relation, b, a, b)  # longer than refs
        else:
            candidate = perturb(rng, rng.choice(refs))
        candidates.append(candidate)
        references.append(refs)
    for i, sentence in enumerate(COCO_LIKE[:6]):
        refs = [sentence] + [perturb(rng, rng.choice(COCO_LIKE)) for _ in range(4)]
        candidates.append(sentence if i == 0 else perturb(rng, sentence))
        references.append(refs)
    candidates.append("")                                          # empty candidate
    references.append(["a small red circle", "one small red circle"])
    candidates.append("the the the the the the the the the the the the")
    references.append(["the cat sat on the mat", "there is a cat on the mat"])
    return candidates, references


def corpora():
    main = main_corpus()
    single = (["a small red circle"], [["a small red circle", "a small red circle on a plain background"]])
    # Spacing oddities: BLEU and CIDEr split on runs of whitespace, ROUGE-L on every single space.
    spacing = (
        ["a  small red circle", " a small red circle", "a\tsmall red\tcircle", "two shapes"],
        [["a small red circle", "a small  red circle "], ["a small red circle"],
         ["a small red circle", "small red circle"], ["two shapes", "two  shapes", "shapes"]],
    )
    identical = (["a b c d e", "f g h i j"], [["a b c d e"], ["f g h i j"]])
    return {"main": main, "single_image": single, "spacing": spacing, "identical": identical}


def score(candidates, references):
    res = {i: [c] for i, c in enumerate(candidates)}
    gts = {i: list(r) for i, r in enumerate(references)}
    bleu, bleu_per_image = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_per_image = Rouge().compute_score(gts, res)
    cider, cider_per_image = Cider().compute_score(gts, res)
    return {
        "bleu": [float(x) for x in bleu],
        "bleu_per_image": [[float(bleu_per_image[k][i]) for k in range(4)]
                           for i in range(len(candidates))],
        "rouge_l": float(rouge),
        "rouge_l_per_image": [float(x) for x in rouge_per_image],
        "cider_d": float(cider),
        "cider_d_per_image": [float(x) for x in cider_per_image],
    }


# Raw captions whose PTB tokenization glimpse::coco_tokenize reproduces exactly. Known differences
# (documented in models/caption_metrics.h): "#1" (PTB: "# 1"), "10:00am" (PTB: "10:00 am"),
# abbreviations beyond mr./mrs./ms./dr. ("etc." keeps its period in PTB), "'n'".
PTB_PROBES = [
    "A man riding a wave on top of a surfboard.",
    "Two giraffes standing in a grassy field, next to trees.",
    "A KITCHEN with stainless steel appliances and a white fridge",
    "a dog. a cat. the end",
    "at&t r&b a@b a+b 1,000 3.5 5:30",
    "the u.s. army and mr. smith",
    "'90s music from the 1950's",
    "o'clock dogs' toys",
    "the cats' 'favorite' toys",
    "we're you've they'll she'd i'm he's can't won't",
    "a man -- with a hat - and - a coat",
    "well-dressed man, -dashed and ended-",
    "\"quoted\" words 'single'",
    "www.google.com e-mail 3/4 50/50",
    "a sign that reads \"stop\".",
    "three shapes: a small red circle, a large blue square and a small green triangle",
    "a hot-dog & fries!!!",
    "what's this?? huh?!",
    "(a) [b] {c} <d>",
    "ellipsis.. two dots... three dots.... four",
    "$5 5$ 5% costs",
    "a*b c^d e_f g|h i~j",
    "a man's hat. a woman's bag.",
    "cannot gonna wanna gotta",
    "semi;colon comma,separated",
    "a red circle , a blue square .",
    "  Extra   spaces\tand a tab ",
    "A small red circle to the left of a large blue square.",
    "There is a bus (red) on the street!",
    "People waiting at the bus stop; it's raining.",
]


def ptb_section():
    tokenized = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(PTB_PROBES)})
    return [{"raw": c, "ptb": tokenized[i][0]} for i, c in enumerate(PTB_PROBES)]


def main():
    fixture = {
        "generator": "tests/golden/gen_metrics_fixture.py",
        "versions": {"pycocoevalcap": PYCOCOEVALCAP_VERSION},
        "note": "scores from pycocoevalcap Bleu(4) (option 'closest'), Rouge (beta 1.2), "
                "Cider (CIDEr-D: sigma 6, n 4, df from the corpus references); "
                "captions are already tokenized",
        "corpora": {},
        "ptb_tokenizer": ptb_section(),
    }
    for name, (candidates, references) in corpora().items():
        fixture["corpora"][name] = {"candidates": candidates, "references": references,
                                    **score(candidates, references)}
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))
    for name, corpus in fixture["corpora"].items():
        print(name, ["%.4f" % b for b in corpus["bleu"]], "%.4f" % corpus["rouge_l"],
              "%.4f" % corpus["cider_d"])


if __name__ == "__main__":
    main()
