#!/usr/bin/env python3
"""pycocoevalcap's PTB tokenization (Stanford CoreNLP 3.4.1's PTBTokenizer run by
pycocoevalcap/tokenizer/ptbtokenizer.py with -preserveLines -lowerCase, then its punctuation list
dropped), frozen for glimpse's models/ptb_tokenizer.

  python3 tests/golden/gen_ptb_tokenizer_fixture.py            # tests/data/ptb_tokenizer_fixture.json
                                                               # and tests/data/score/*.json (~2 min)
  python3 tests/golden/gen_ptb_tokenizer_fixture.py --tables   # models/ptb_tokenizer_tables.inc

The fixture holds, for a stress set of raw captions (non-ASCII text, quotes, dashes, abbreviations,
numbers, contractions, URLs, odd spaces...), what pycocoevalcap's PTBTokenizer.tokenize returns for
each caption alone and the raw Java output line before the punctuation removal; batches where one
caption's tokenization depends on the next one (the Java tokenizer reads all captions as one file);
a seeded random set of caption-like strings; Java's String.toLowerCase(Locale.ENGLISH) of every
character it changes; and the known differences (tests/golden/README.md), with pycocoevalcap's
output for them. tests/data/score/ gets a small annotations + results pair with non-ASCII captions
and pycocoevalcap's scores on it, end to end (COCO, loadRes, COCOEvalCap with its tokenizer, Bleu,
Rouge and Cider), for tools/score.

--tables probes the jar itself for the lexer's character classes (which characters are letters,
digits, stand-alone symbols or dropped), and asks Java for its lower-case mapping; both go into
models/ptb_tokenizer_tables.inc, which the C++ tokenizer includes.

Needs: pycocoevalcap 1.2 (pip install pycocoevalcap; it bundles stanford-corenlp-3.4.1.jar) and
java on the PATH (the fixture in the repository was made with OpenJDK 17).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pycocoevalcap
from pycocoevalcap.tokenizer import ptbtokenizer
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURE = os.path.join(ROOT, "tests", "data", "ptb_tokenizer_fixture.json")
TABLES = os.path.join(ROOT, "models", "ptb_tokenizer_tables.inc")
SCORE_DIR = os.path.join(ROOT, "tests", "data", "score")
JAR = os.path.join(os.path.dirname(ptbtokenizer.__file__), ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)

try:
    from importlib.metadata import version
    PYCOCOEVALCAP_VERSION = version("pycocoevalcap")
except Exception:  # pragma: no cover
    PYCOCOEVALCAP_VERSION = "unknown"

# The characters CoreNLP's lexer starts a new line at. pycocoevalcap replaces only "\n" in a
# caption, so a caption holding any other of these splits into two output lines.
JAVA_NEWLINES = "\r\n\u000b\u000c\u2028\u2029"


def java_version():
    """"OpenJDK 17.0.15" and the like, from java -version."""
    out = subprocess.run(["java", "-version"], capture_output=True, text=True)
    first = (out.stderr or out.stdout).splitlines()[0]
    name = "OpenJDK" if "openjdk" in first.lower() else "Java"
    return "%s %s" % (name, first.split('"')[1] if '"' in first else first.strip())


def run_java_ptb(text):
    """The Java command pycocoevalcap runs, on `text` as its whole input file; returns stdout."""
    with tempfile.NamedTemporaryFile(delete=False, suffix=".txt") as f:
        f.write(text.encode())
        name = f.name
    try:
        out = subprocess.run(["java", "-cp", JAR, "edu.stanford.nlp.process.PTBTokenizer",
                              "-preserveLines", "-lowerCase", name], capture_output=True, check=True)
    finally:
        os.remove(name)
    return out.stdout.decode()


def raw_lines(captions):
    """The Java output lines for captions joined the way pycocoevalcap joins them."""
    return run_java_ptb("\n".join(c.replace("\n", " ") for c in captions)).split("\n")


def pycoco_tokenize(captions):
    """pycocoevalcap's own PTBTokenizer.tokenize on one batch (one image per caption, in order)."""
    result = PTBTokenizer().tokenize({i: [{"caption": c}] for i, c in enumerate(captions)})
    return [result[i][0] if i in result else None for i in range(len(captions))]


# ---- --tables ------------------------------------------------------------------------------------

# Characters from U+0080 up whose treatment the C++ code spells out itself (quotes, dashes, currency,
# fractions, super/subscript digits, hyphens, number separators...): the probe below must not find
# any other character outside the five table classes.
EXPLICIT = set()
for first, last in [(0x80, 0x80), (0x85, 0x85), (0x91, 0x97), (0xA0, 0xA0), (0xA2, 0xA5), (0xAB, 0xAB),
                    (0xAD, 0xAD), (0xB2, 0xB3), (0xB9, 0xB9), (0xBB, 0xBE), (0x058A, 0x058A),
                    (0x066B, 0x066C), (0x2000, 0x200B), (0x200E, 0x200F), (0x2010, 0x2011),
                    (0x2013, 0x2015), (0x2018, 0x201F), (0x2026, 0x2026), (0x2039, 0x203A),
                    (0x2044, 0x2044), (0x2070, 0x2070), (0x2074, 0x207B), (0x2080, 0x208B),
                    (0x20A0, 0x20A0), (0x20AC, 0x20AC), (0x2153, 0x2154), (0x3000, 0x3001),
                    (0xFEFF, 0xFEFF)]:
    EXPLICIT.update(range(first, last + 1))


def probe_classes():
    """Class of every BMP character from U+0080 up, as the 3.4.1 lexer treats it:
    'L' letter (may start or continue any word, also after digits), 'X' letter only inside the
    lexer's WORD rule (combining marks and the like: may not follow a digit), 'D' digit,
    'S' a token of its own, 'N' dropped (untokenizable, a space, unassigned), 'E' spelled out in
    C++ (EXPLICIT)."""
    cps = [c for c in range(0x80, 0x10000)
           if not 0xD800 <= c <= 0xDFFF and chr(c) not in JAVA_NEWLINES and c != 0x85]
    contexts = ["{}", "a{}b", "1{}2", "x {} y", "5,{}", "{}{}"]
    lines = [t.replace("{}", chr(c)) for c in cps for t in contexts]
    out = raw_lines(lines)
    classes = {}
    for i, c in enumerate(cps):
        alone, in_word, in_number, spaced, after_comma, twice = out[i * len(contexts):(i + 1) * len(contexts)]
        low = chr(c).lower() if c != 0x130 else "i\u0307"
        if in_word == "a" + low + "b":
            if after_comma == "5," + low:
                cls = "D"
            elif in_number == "1" + low + "2":
                cls = "L"
            else:
                cls = "X"
        elif alone == "" and spaced == "x y":
            cls = "N"
        elif alone == low and spaced == "x " + low + " y" and twice == low + " " + low:
            cls = "S"
        else:
            cls = "E"
        if cls == "E" and c not in EXPLICIT:
            sys.exit("U+%04X: unexpected behaviour %r, update EXPLICIT and the C++ code"
                     % (c, [alone, in_word, in_number, spaced, after_comma, twice]))
        # A character the C++ code names may still be a token of its own where no named rule
        # takes it (U+2044 alone, one U+00B2): keep S for those, the rest is the code's business.
        classes[c] = ("S" if cls == "S" else "N") if c in EXPLICIT else cls
    return classes


LOWER_JAVA = r"""
import java.util.Locale;
public class LowerDump {
  public static void main(String[] args) {
    StringBuilder out = new StringBuilder();
    // Characters with case, for the final-sigma rule: "cased" lines first.
    for (int c = 0; c < 0x10000; c++)
      if (Character.isLowerCase(c) || Character.isUpperCase(c) || Character.isTitleCase(c))
        out.append("cased ").append(Integer.toHexString(c)).append('\n');
    for (int c = 0; c <= 0x10FFFF; c++) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      String s = new String(Character.toChars(c));
      String lower = s.toLowerCase(Locale.ENGLISH);
      if (lower.equals(s)) continue;
      out.append(Integer.toHexString(c));
      lower.codePoints().forEach(x -> out.append(' ').append(Integer.toHexString(x)));
      out.append('\n');
    }
    System.out.print(out);
  }
}
"""


def java_lowercase():
    """{code point: lower-case string} for every character Java's toLowerCase changes, and the BMP
    characters Java considers cased (lower, upper or title case)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "LowerDump.java")
        with open(source, "w") as f:
            f.write(LOWER_JAVA)
        out = subprocess.run(["java", source], capture_output=True, text=True, check=True).stdout
    mapping, cased = {}, []
    for line in out.splitlines():
        if line.startswith("cased "):
            cased.append(int(line.split()[1], 16))
            continue
        fields = [int(x, 16) for x in line.split()]
        mapping[fields[0]] = "".join(chr(x) for x in fields[1:])
    return mapping, cased


def probe_sentence_starters():
    """The characters that make a line end after an abbreviation like "etc." a sentence end
    ("etc." "." instead of "etc.") when they follow "etc. ": the lexer's upper-case letters (the
    Unicode of the Java that generated the lexer, so not quite today's), from U+0080 up."""
    cps = [c for c in range(0x80, 0x10000)
           if not 0xD800 <= c <= 0xDFFF and chr(c) not in JAVA_NEWLINES and c != 0x85]
    lines = []
    for c in cps:
        lines += ["etc. " + chr(c), "x"]
    out = raw_lines(lines)
    # A dropped character that counts (U+2163, a Roman numeral) leaves just "etc. .".
    return sorted(c for i, c in enumerate(cps) if (out[2 * i] == "etc. ." or out[2 * i].startswith("etc. . "))
                  and chr(c) not in "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u3000")


def runs(code_points):
    """(first, count, stride) runs covering sorted code points, stride 1 or 2."""
    out, i = [], 0
    while i < len(code_points):
        best = (1, 1)
        for stride in (1, 2):
            j = i
            while j + 1 < len(code_points) and code_points[j + 1] == code_points[j] + stride:
                j += 1
            if j - i + 1 > best[0]:
                best = (j - i + 1, stride)
        out.append((code_points[i], best[0], best[1]))
        i += best[0]
    return out


def class_ranges(classes):
    ranges = []
    for c in sorted(classes):
        cls = classes[c]
        if cls == "N":
            continue
        if ranges and ranges[-1][2] == cls and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c, cls])
    return ranges


def lowercase_runs(mapping):
    """(first, count, delta, stride) runs of one-character mappings: stride 2 covers the
    alternating upper/lower pairs of Latin Extended, Cyrillic and so on."""
    single = sorted((c, ord(l) - c) for c, l in mapping.items() if len(l) == 1)
    runs, i = [], 0
    while i < len(single):
        first, delta = single[i]
        best = (1, 1)
        for stride in (1, 2):
            j = i
            while (j + 1 < len(single) and single[j + 1][0] == single[j][0] + stride
                   and single[j + 1][1] == delta):
                j += 1
            if j - i + 1 > best[0]:
                best = (j - i + 1, stride)
        runs.append((first, best[0], delta, best[1]))
        i += best[0]
    return runs


def write_tables():
    classes = probe_classes()
    mapping, cased = java_lowercase()
    multi = {c: l for c, l in mapping.items() if len(l) != 1}
    if set(multi) != {0x130}:
        sys.exit("unexpected multi-character lower-case mappings: %r" % multi)
    lines = [
        "// Generated by tests/golden/gen_ptb_tokenizer_fixture.py --tables; do not edit.",
        "// Character classes of Stanford CoreNLP 3.4.1's PTBLexer (pycocoevalcap's jar), probed",
        "// character by character, and %s's String.toLowerCase(Locale.ENGLISH)." % java_version(),
        "// Included by models/ptb_tokenizer.cpp only.",
        "",
        "// [first, last] -> class, for U+0080..U+FFFF; everything not listed is dropped by the",
        "// lexer or is handled by name in ptb_tokenizer.cpp.",
        "constexpr ClassRange kClassRanges[] = {",
    ]
    row = []
    for first, last, cls in class_ranges(classes):
        row.append("{0x%04X, 0x%04X, k%s}," % (first, last, {"L": "Letter", "X": "WordOnly",
                                                              "D": "Digit", "S": "Symbol"}[cls]))
        if len(row) == 3:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines += ["};", "",
              "// Runs of one-to-one lower-case mappings: code points first, first + stride, ... (count",
              "// of them) map to themselves + delta. U+0130 (to i + U+0307) and the final sigma are",
              "// handled in code.",
              "constexpr LowerRun kLowerRuns[] = {"]
    row = []
    for first, count, delta, stride in lowercase_runs(mapping):
        row.append("{0x%04X, %d, %d, %d}," % (first, count, delta, stride))
        if len(row) == 4:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines += ["};", "",
              "// Upper-case letters from U+0080 up, as the lexer's sentence-end test after \"etc.\" and the",
              "// like sees them: code points first, first + stride, ... (count of them).",
              "constexpr UpperRun kUpperRuns[] = {"]
    row = []
    for first, count, stride in runs(probe_sentence_starters()):
        row.append("{0x%04X, %d, %d}," % (first, count, stride))
        if len(row) == 5:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines += ["};", "",
              "// Characters Java's final-sigma rule counts as having case: code points first, first +",
              "// stride, ... (count of them).",
              "constexpr UpperRun kCasedRuns[] = {"]
    row = []
    for first, count, stride in runs(cased):
        row.append("{0x%04X, %d, %d}," % (first, count, stride))
        if len(row) == 5:
            lines.append("    " + " ".join(row))
            row = []
    if row:
        lines.append("    " + " ".join(row))
    lines += ["};", ""]
    with open(TABLES, "w") as f:
        f.write("\n".join(lines))
    print("wrote", os.path.relpath(TABLES, ROOT), "(%d class ranges, %d lower-case runs)"
          % (len(class_ranges(classes)), len(lowercase_runs(mapping))))


# ---- the fixture --------------------------------------------------------------------------------

# Captions tokenized one at a time (each is a whole pycocoevalcap call, so the end of the file
# follows it). Grouped by what they probe; every group is checked for equality.
STRESS = {
    "plain": [
        "A man riding a wave on top of a surfboard.",
        "Two giraffes standing in a grassy field, next to trees.",
        "A KITCHEN with stainless steel appliances and a white fridge",
        "a dog. a cat. the end",
        "  Extra   spaces\tand a tab ",
        "",
        " ",
        "There is a bus (red) on the street!",
        "People waiting at the bus stop; it's raining.",
        "three shapes: a small red circle, a large blue square and a small green triangle",
    ],
    "non_ascii_case": [
        "\u00c9COLE \u00c9l\u00e8ve \u00e9t\u00e9",
        "\u00c9",
        "\u00d1AND\u00da on the \u00c5NGSTR\u00d6M scale",
        "STRA\u00dfE and STRASSE and \u1e9e",
        "\u00c6R\u00d8 \u00d8resund \u0132ssel \u0152uvre",
        "\u00c7A\u011eLAR \u0130STANBUL \u0131\u0130iI",
        "\u03a3\u039f\u03a6\u0399\u0391 \u039f\u0394\u039f\u03a3 \u0391\u0398\u0397\u039d\u0391",
        "\u039f \u0394\u03a1\u039f\u039c\u039f\u03a3 \u03a3\u03a4\u0397\u039d \u0391\u0398\u0397\u039d\u0391.",
        "\u03a3 \u03a3\u03a3 \u03b1\u03a3 \u03b1\u03a3\u03b2 \u0391\u03a3.",
        "\u041f\u0420\u0418\u0412\u0415\u0422 \u041c\u0418\u0420 \u0401\u041b\u041a\u0410 \u0406\u0421\u0422\u041e\u0420\u0406\u042f",
        "\u0535\u0550\u0535\u054e\u0531\u0546 \u10d0\u10d1\u10d2 \u1c90\u1c91",
        "\u01c5emal \u01c8ubljana \u01cbe",
        "\ufb01sh \ufb02ower",
        "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23",
        "\u13a0\u13a1\u13a2 Cherokee",
        "\u2160 \u216b \u2170 Roman numerals",
        "Ti\u1ebfng Vi\u1ec7t",
        "\u0939\u093f\u0928\u094d\u0926\u0940 \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea",
        "\u4e2d\u6587\u5b57 \u3072\u3089\u304c\u306a \u30ab\u30bf\u30ab\u30ca \ud55c\uad6d\uc5b4",
        "e\u0301cole A\u0308pfel n\u0303and\u00fa",
    ],
    "quotes": [
        "\u201cdouble\u201d \u2018single\u2019 \"straight\" 'single'",
        "``latex'' `single'",
        "\u201eGerman\u201c \u201aGerman\u2018 \u00abFrench\u00bb \u2039x\u203a",
        "can\u2019t it\u2019s don\u2018t \u201990s rock\u2019n\u2019roll o\u2019clock \u2019em \u2019tis",
        "a sign that reads \"stop\".",
        "the \u201cbest\u201d pizza",
        "5'6\" tall, 6' wide",
        "''quoted'' and ''",
    ],
    "dashes_ellipses": [
        "a man \u2014 with a hat \u2013 and a coat \u2015 end",
        "a man -- with a hat --- and ---- a coat -----",
        "well-dressed man, -dashed and ended-",
        "a \u2010 b \u2011 c \u2012 d \u2212 e",
        "wait... what \u2026 really",
        ". . . and . . . .",
        "a....b.....c......d",
        "ellipsis.. two dots... three dots.... four",
        "wait\u2026what a\u2026b",
    ],
    "spaces": [
        "a\u00a0dog\u00a0on\u00a0a\u00a0bench",
        "a\u2009thin\u202fnarrow\u2007figure\u205fmath\u3000ideographic space",
        "zero\u200bwidth\ufeffno\u200dbreak",
        "ogham\u1680space and en\u2002em\u2003spaces",
        "tab\tinside and newline\ninside",
        "a\u0085b next line character",
        "soft\u00adhyphen co\u00adop",
        "5\u00a01/2 and 5 1/2 inches",
    ],
    "abbreviations": [
        "Mr. Smith and Mrs. Jones met Dr. Who",
        "the U.S. army",
        "made in the U.S.",
        "A dog named A.",
        "Plan A.",
        "I. The end",
        "the U.S. The end",
        "the U.S. the end",
        "dogs, cats, etc.",
        "dogs, cats, etc. The end",
        "dogs, cats etc. and birds",
        "e.g. dogs i.e. cats",
        "at 10 a.m. or 5 p.m.",
        "St. Louis and Mt. Everest",
        "No. 5 and fig. 3 and ca. 1900",
        "Apple Inc.",
        "Apple Inc. is big",
        "Martin Luther King Jr.",
        "dogs vs. cats",
        "approx. 5 feet",
        "a.k.a. the dog",
        "Ph.D. student",
        "Jan. 5 and Sept. 10",
        "Mass. and Calif. and mass.",
        "the end.",
        "U.K. U.S.A. u.s.",
        "Pty. Ltd and Co. Ltd",
    ],
    "numbers": [
        "1,000.5 and 1.000,5",
        "$5 and $5.99 and US$5 and us$5",
        "5% and 100 % and 0.5%",
        "10am 10:30 10:30am 10 am",
        "1/2 \u00bd \u00bc \u00be \u2153 \u2154 \u215b",
        "3.14 .5 -5 +5 -3.5",
        "1st 2nd 3rd 4th 21st",
        "1950s '90s the 80s",
        "24/7 and 12/25/2014 and 2014-12-25",
        "(555) 123-4567 and 555-1234",
        "3x4 4x4 2x",
        "#1 No.1 no.1",
        "H\u2082O x\u00b2 m\u00b3",
        "\u00a35 \u20ac5 \u00a55 5\u00a2 \u20b95 \u20aa5",
        "25\u00b0C and 77 \u00b0F",
        "\u0663\u0664 Arabic-Indic digits",
    ],
    "contractions": [
        "we're you've they'll she'd i'm he's can't won't",
        "CAN'T WON'T Don't",
        "isn't aren't wasn't couldn't shouldn't",
        "gonna gotta wanna lemme gimme cannot",
        "'tis 'twas ma'am o'clock y'all",
        "the dogs' bones and the children's toys and James's car",
        "a man's hat. a woman's bag.",
        "'90s music from the 1950's",
        "the cats' 'favorite' toys",
        "rock 'n' roll and rock'n'roll",
        "O'Malley d'Artagnan l'eau",
    ],
    "hyphens_slashes": [
        "a t-shirt, an x-ray and a 3-D movie",
        "e-mail mid-1990s 10-year-old state-of-the-art",
        "U.S.-based co-op re-enter anti-war pro-life",
        "a hot-dog & fries!!!",
        "and/or a/b 50/50 3/4-inch",
        "well--dressed",
    ],
    "urls_emails": [
        "www.example.com and example.com",
        "http://example.com/a?b=c.",
        "https://www.example.org/path/to/page.html",
        "user@example.com, or me@x.org.",
        "@user and #hashtag and #1",
        "photo.jpg and image.PNG and file.txt",
    ],
    "brackets_symbols": [
        "(a) [b] {c} <d>",
        "<b>bold</b> <i>italic</i>",
        "a (red) bus and a [sic] sign",
        "at&t r&b a@b a+b AT&T R&B Q&A",
        "&amp; &quot;hi&quot; &lt;b&gt; &#39; &nbsp; caf&eacute;",
        "a*b c^d e_f g|h i~j a\\b a=b",
        "\u00a9 \u00ae \u2122 \u00d7 \u00f7 \u00a7 \u00b6 \u2022 \u00b7 \u2020 \u2030",
        ":) :-( ;) :D ^_^ (^_^)",
        "C++ and c# and F#",
        "what's this?? huh?! Wow!!!",
        "\u00a1hola! \u00bfque?",
    ],
    "beyond_bmp": [
        "\U0001f600",
        "a \U0001f600 b",
        "a\U0001f600b",
        "thumbs \U0001f44d\U0001f3fd up",
        "flag \U0001f1eb\U0001f1f7 family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\U0001d400\U0001d401\U0001d402 math bold",
        "\U00010400 Deseret",
        "replacement \ufffd char",
    ],
    "punctuation_ends": [
        "A dog.", "A dog .", "A dog!", "A dog?", "A dog...", "A dog!?", "\"A dog.\"", "(A dog.)",
        "A dog;", "A dog:", "A dog,", "A dog -", "A dog'", ".", "!!!", "?!", "...",
    ],
}

# Batches: several captions in one call, where one caption's tokens depend on the next caption.
BATCHES = [
    ["dogs, cats, etc.", "The end"],
    ["dogs, cats, etc.", "the end"],
    ["dogs, cats, etc.", ""],
    ["dogs, cats, etc.", " the end"],
    ["dogs, cats, etc.", "\u00c9cole"],
    ["dogs, cats, etc.", "<b>x</b>"],
    ["dogs, cats, etc.", "5 more"],
    ["made in the U.S.", "The end"],
    ["made in the U.S.", "A dog"],
    ["made in the U.S.", "He"],
    ["A dog named A.", "B."],
    ["Apple Inc.", "Apple Inc."],
    ["Mr.", "The"],
    ["fig.", "5 cats"],
    ["Plan A.", "The end"],
    ["Plan A.", "the end"],
    ["Vitamin C.", "A dog"],
    ["see fig.", "3 dogs"],
    ["a dog", "etc."],
    ["a <b a='x", "y'> z"],
    ["A man.", "Two dogs.", "a cat"],
    ["", "", "etc."],
    ["etc.", "\u2163"],
]

# Where glimpse is not equal, on purpose: each entry is checked to still differ in the stated way.
LINE_BREAKS = [("\r", "carriage return"), ("\r\n", "CR LF"), ("\u000b", "vertical tab"),
               ("\u000c", "form feed"), ("\u2028", "line separator"), ("\u2029", "paragraph separator")]
SIGMA_DIFFERENCES = ["O\u2019\u03a312"]


def fuzz_captions(seed, count):
    """Caption-like strings from words, abbreviations, numbers, quotes, symbols and odd spaces."""
    rng = random.Random(seed)
    words = ("a the man woman dog cat bus street table red large small two of on in with and is "
             "A The Man DOG Two THERE pizza surfboard").split()
    frags = ("\" ' ` ( ) [ ] { } < > - -- --- ... / \\ | & * # @ $ % ^ ~ _ + = '' . , ; : ! ? "
             "\u2018 \u2019 \u201c \u201d \u00ab \u00bb \u201e \u2014 \u2013 \u2026 \u00b7 \u00a9 "
             "\u00b0 \u00b2 \u00bd \u00a2 \u00a3 \u20ac \u00a5 \u00bf "
             "5 10 1,000 3.5 10:30 1/2 1950s 10am -5 100% "
             "Mr. Dr. U.S. etc. Inc. a.m. e.g. No. fig. Jan. Mass. Jr. Co. A. I. x. "
             "can't it's y'all '90s o'clock gonna cannot don't I'm Can\u2019t 'tis "
             "well-dressed t-shirt x-ray e-mail 10-year-old www.google.com me@x.com @user #tag "
             "<b> &amp; &quot; caf\u00e9 \u0395\u039b\u039b\u0391\u03a3 \u041c\u043e\u0441\u043a\u0432\u0430 "
             "\u6771\u4eac na\u00efve \u0130stanbul stra\u00dfe \U0001f600 :) C++ AT&T photo.jpg").split()
    seps = [" "] * 10 + ["", "  ", "\t", "\u00a0", "\u2009"]
    out = []
    for _ in range(count):
        n = rng.randint(1, 9)
        caption = ""
        for i in range(n):
            caption += rng.choice(words) if rng.random() < 0.45 else rng.choice(frags)
            if i < n - 1:
                caption += rng.choice(seps)
        if rng.random() < 0.3:
            caption += rng.choice([".", "!", "?", " .", "...", "'", '"', ")", " "])
        out.append(caption)
    return out


def parallel(function, items):
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return list(pool.map(function, items))


def alone(caption):
    """pycocoevalcap's result and the raw Java line for one caption tokenized by itself."""
    return {"raw": caption, "coco": pycoco_tokenize([caption])[0], "ptb": raw_lines([caption])[0]}


def batch(captions):
    return {"captions": captions, "coco": pycoco_tokenize(captions), "ptb": raw_lines(captions)[:len(captions)]}


def line_break_case(item):
    char, name = item
    captions = ["a dog%son a mat." % char, "Two cats."]
    spaced = [c.replace(char, " ") for c in captions]
    return {
        "what": "a caption containing %s (U+%04X)" % (name, ord(char[0])),
        "captions": captions,
        "coco": pycoco_tokenize(captions),                 # what pycocoevalcap returns: shifted
        "ptb_lines": raw_lines(captions),                  # the Java output has an extra line
        "coco_if_space": pycoco_tokenize(spaced),          # and with the break a space instead
    }


def pipeline():
    """A results file scored against an annotations file by pycocoevalcap end to end (COCO,
    loadRes, COCOEvalCap.evaluate with its tokenizer and the Bleu, Rouge and Cider scorers)."""
    from pycocotools.coco import COCO
    import pycocoevalcap.eval as coco_eval

    class NotRun:  # METEOR and SPICE are not part of glimpse's scores; keep evaluate() from running them
        def method(self):
            return "not run"

        def compute_score(self, gts, res):
            return 0.0, [0.0] * len(res)

    coco_eval.Meteor = NotRun
    coco_eval.Spice = NotRun
    images = [{"id": i, "file_name": "%012d.jpg" % i} for i in (42, 7, 1001, 3, 56, 12, 99, 5)]
    references = {
        42: ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean.",
             "Un homme fait du surf sur une vague \u00e9norme.", "a man on a surfboard riding a wave"],
        7: ["Two giraffes standing in a grassy field, next to trees.", "\u201cTwo\u201d giraffes \u2014 next to trees\u2026",
            "TWO GIRAFFES IN A FIELD", "giraffes near trees, etc.", "The giraffes are eating leaves."],
        1001: ["A red double-decker bus on a street in the U.S.", "A bus driving down the street.",
               "A RED BUS \u2013 LONDON STYLE", "a bus that's red, and it's big"],
        3: ["\u039f \u0394\u03a1\u039f\u039c\u039f\u03a3 \u03c3\u03c4\u03b7\u03bd \u0391\u03b8\u03ae\u03bd\u03b1.",
            "A street in Athens, Greece.", "Cars parked on a street in Athens."],
        56: ["A plate of food with broccoli and rice.", "Broccoli, rice & chicken on a plate.",
             "a plate with food (broccoli and rice)", "Food on a white plate; it's dinner."],
        12: ["A dog sitting on a couch next to a cat.", "A dog and a cat on the sofa.",
             "The dog\u2019s on the couch with the cat.", "A caf\u00e9 dog named A."],
        99: ["An image that no result describes.", "Nothing here."],
        5: ["A kitchen with stainless steel appliances.", "A KITCHEN with a white fridge \u00bd open.",
            "Stainless-steel appliances in a kitchen (10am).", "A kitchen with 5 1/2 steel appliances."],
    }
    # Interleaved, and in an order unlike the images': pycocoevalcap takes each image's references
    # in file order, and the tokenizer sees them image by image in the images' order.
    annotations = []
    for rank in range(5):
        for image_id in (7, 42, 3, 1001, 56, 12, 99, 5):
            if rank < len(references[image_id]):
                annotations.append({"image_id": image_id, "id": len(annotations) + 1,
                                    "caption": references[image_id][rank]})
    dataset = {"info": {"description": "glimpse score test"}, "images": images, "annotations": annotations}
    results = [
        {"image_id": 1001, "caption": "a red bus driving down a street"},
        {"image_id": 42, "caption": "A man riding a wave on a surfboard."},
        {"image_id": 7, "caption": "two giraffes standing next to trees"},
        {"image_id": 3, "caption": "\u0395\u039d\u0391\u03a3 \u0394\u03a1\u039f\u039c\u039f\u03a3 in Athens."},
        {"image_id": 56, "caption": "a plate of broccoli & rice"},
        {"image_id": 12, "caption": "A dog and a cat on a couch\u2026"},
        # "5 1/2" is one PTB token with a no-break space inside: BLEU and CIDEr split it, ROUGE-L not.
        {"image_id": 5, "caption": "a kitchen with 5 1/2 appliances, a fridge, etc."},
    ]
    with tempfile.TemporaryDirectory() as tmp:
        ann_path, res_path = os.path.join(tmp, "a.json"), os.path.join(tmp, "r.json")
        with open(ann_path, "w", encoding="utf-8") as f:
            json.dump(dataset, f, ensure_ascii=False)
        with open(res_path, "w", encoding="utf-8") as f:
            json.dump(results, f, ensure_ascii=False)
        coco = COCO(ann_path)
        coco_results = coco.loadRes(res_path)
        evaluator = coco_eval.COCOEvalCap(coco, coco_results)
        evaluator.params["image_id"] = coco_results.getImgIds()
        evaluator.evaluate()
    names = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"]
    return dataset, results, {
        "note": "pycocoevalcap %s end to end: COCO(annotations), loadRes(results), COCOEvalCap with "
                "params['image_id'] = loadRes(...).getImgIds(), evaluate() with METEOR and SPICE "
                "replaced by stubs (glimpse computes neither)" % PYCOCOEVALCAP_VERSION,
        "scores": {n: float(evaluator.eval[n]) for n in names},
        "per_image": {str(e["image_id"]): {n: float(e[n]) for n in names} for e in evaluator.evalImgs},
    }


def write_fixture():
    stress = {}
    for group, captions in STRESS.items():
        stress[group] = parallel(alone, captions)
    fuzz = [fuzz_captions(20240917 + i, 1 + i % 3) for i in range(120)]
    lowercase, _ = java_lowercase()
    fixture = {
        "generator": "tests/golden/gen_ptb_tokenizer_fixture.py",
        "versions": {"pycocoevalcap": PYCOCOEVALCAP_VERSION, "stanford_corenlp": "3.4.1",
                     "java": java_version()},
        "note": "coco: pycocoevalcap PTBTokenizer().tokenize on the captions of one call, in order; "
                "ptb: the Java tokenizer's output lines for the same file, before pycocoevalcap drops "
                "its punctuation list",
        "stress": stress,
        "batches": parallel(batch, BATCHES),
        "fuzz": parallel(batch, fuzz),
        "known_differences": {
            "line_breaks": parallel(line_break_case, LINE_BREAKS),
            "final_sigma": [{"raw": c, "java": java} for c, java in
                            zip(SIGMA_DIFFERENCES, java_lower_strings(SIGMA_DIFFERENCES))],
        },
        "java_lowercase": [[c, l] for c, l in sorted(lowercase.items())],
    }
    dataset, results, scores = pipeline()
    os.makedirs(SCORE_DIR, exist_ok=True)
    for name, data in (("annotations.json", dataset), ("results.json", results), ("pycocoevalcap_scores.json", scores)):
        with open(os.path.join(SCORE_DIR, name), "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
    with open(FIXTURE, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    count = sum(len(v) for v in stress.values())
    print("wrote", os.path.relpath(FIXTURE, ROOT), "(%d stress captions, %d batches, %d fuzz batches)"
          % (count, len(BATCHES), len(fuzz)))
    print("wrote", os.path.relpath(SCORE_DIR, ROOT), json.dumps(scores["scores"]))


SIGMA_JAVA = r"""
import java.util.Locale;
import java.nio.charset.StandardCharsets;
import java.io.*;
public class SigmaLower {
  public static void main(String[] args) throws IOException {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    PrintStream out = new PrintStream(System.out, true, "UTF-8");
    for (String line; (line = in.readLine()) != null; ) out.println(line.toLowerCase(Locale.ENGLISH));
  }
}
"""


def java_lower_strings(strings):
    """Java's String.toLowerCase(Locale.ENGLISH) of whole strings (one per line)."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "SigmaLower.java")
        with open(source, "w") as f:
            f.write(SIGMA_JAVA)
        out = subprocess.run(["java", source], input="\n".join(strings) + "\n", capture_output=True,
                             text=True, encoding="utf-8", check=True).stdout
    return out.split("\n")[:len(strings)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", action="store_true", help="write models/ptb_tokenizer_tables.inc")
    args = parser.parse_args()
    if args.tables:
        write_tables()
    else:
        write_fixture()


if __name__ == "__main__":
    main()
