// pycocoevalcap's tokenization of captions, reproduced: pycocoevalcap/tokenizer/ptbtokenizer.py
// writes all captions of one call into a file, one per line ("\n" inside a caption replaced by a
// space), runs Stanford CoreNLP 3.4.1's PTBTokenizer on it with -preserveLines -lowerCase (Java), and
// drops the tokens of its punctuation list from each output line. glimpse's scorers equal
// pycocoevalcap's on the same tokens, so equal tokens make equal scores.
//
// The lexer here is written from the Java tokenizer's observed behaviour (tests/golden/
// gen_ptb_tokenizer_fixture.py probes the jar; the character classes of models/
// ptb_tokenizer_tables.inc come from probing every BMP character). It matches as the Java one
// does: at each position the longest match of any rule, the earlier rule on a tie, with the
// rules' trailing contexts counted in the length. Besides splitting words from punctuation it
// does what the Java tokenizer does and a hand-rolled one would not: "10am" and "1950s" stay one
// token, "gonna" -> "gon na", "can't" -> "ca n't", "U.S." keeps its periods, "A." at the end of a
// caption is "a." but "I." before "The" is "i" ".", quotes become `` '' ` ' (then dropped),
// dashes -- (dropped), ellipses ... (dropped), brackets -lrb- -rrb- -lsb- ... (kept, as
// pycocoevalcap keeps them: its list has them in upper case), "5 1/2" is one token with a
// non-breaking space inside, letters of every script are lower-cased the way Java's
// String.toLowerCase(Locale.ENGLISH) does it (É -> é, Σ at a word's end -> ς, İ -> i + U+0307),
// characters outside the Basic Multilingual Plane (emoji) and unassigned ones are dropped.
//
// Context across captions. The Java tokenizer sees one file, so a caption's last token can depend
// on the caption after it: "etc." followed by a line that starts with a capital letter, a space or
// an empty line is "etc." "." (a sentence end), otherwise just "etc."; the last caption of a call
// is followed by the end of the file. pycocoevalcap drops such a "." again, but "Plan A." becomes
// "plan a" before "The end" and "plan a." otherwise, and "see fig." keeps its period only before a
// line starting with a digit. coco_tokenize_batch reproduces this for a batch in pycocoevalcap's
// order; coco_tokenize(caption) is a batch of one.
//
// Where this differs from pycocoevalcap (tests/test_ptb_tokenizer.cpp asserts that each difference
// still holds, so this table cannot go stale; tests/golden/README.md has the same table):
//
// | input                                       | pycocoevalcap                                   | here                                  |
// |---------------------------------------------|-------------------------------------------------|---------------------------------------|
// | a caption holding \r, \v, \f, U+2028 or    | Java starts a new output line there, so this    | the character is a space: what        |
// | U+2029 (pycocoevalcap replaces only "\n")   | and every later caption of the call get the     | pycocoevalcap returns when it is one  |
// |                                             | wrong line (its bug: scores become garbage)     |                                       |
// | a Σ whose word Java's BreakIterator cuts    | ς or σ as that iterator decides ("O’Σ12" ->     | a word is letters, marks, digits and  |
// | unusually (digits after an apostrophe)      | "o’σ12")                                        | . ' - _ between letters ("o’ς12")     |
// | invalid UTF-8 (Python strings cannot hold   | -                                               | each bad byte is U+FFFD, which the    |
// | it, so no reference exists)                 |                                                 | Java lexer drops                      |
//
// Lower-casing follows the Unicode version of the Java that runs the tokenizer: the tables here
// come from OpenJDK 17 (Unicode 13), as does the fixture. The lexer's own character classes are
// those of the 2014 jar (Unicode of its day): newer letters such as Georgian capitals (U+1C90-)
// are dropped, as the Java tokenizer drops them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace glimpse {

// The Java tokenizer's output for each caption of one pycocoevalcap call, in order: its tokens,
// lower-cased, before pycocoevalcap drops punctuation.
std::vector<std::vector<std::string>> ptb_tokenize_batch(const std::vector<std::string>& captions);

// What pycocoevalcap's PTBTokenizer.tokenize returns for each caption of one call: the tokens
// joined by single spaces, without those of its punctuation list ('' ' `` ` . ? ! , : - -- ... ;).
std::vector<std::string> coco_tokenize_batch(const std::vector<std::string>& captions);

// coco_tokenize_batch of this caption alone.
std::string coco_tokenize(std::string_view caption);

// Java's String.toLowerCase(Locale.ENGLISH) of UTF-8 text (final sigma as described above).
std::string java_lowercase(std::string_view utf8);

// Whether pycocoevalcap's punctuation list holds this (already lower-cased) token.
bool is_coco_punctuation(std::string_view token);

}  // namespace glimpse
