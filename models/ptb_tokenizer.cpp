// The PTB tokenizer of pycocoevalcap, rebuilt as a longest-match lexer. See ptb_tokenizer.h for
// what it reproduces and where it stops.
//
// How it is built: a handful of pattern combinators (character sets, literals, sequences,
// alternatives, repetitions) compute every position where a pattern can end; each rule is a
// pattern, an optional trailing context (looked at but not consumed) and an action. At each
// position the rule reaching furthest wins, the earlier rule on a tie, as in the JFlex lexer the
// Java tokenizer is generated from. The rules, their order and their actions were worked out by
// probing the Java tokenizer (tests/golden/gen_ptb_tokenizer_fixture.py keeps the evidence).
#include "models/ptb_tokenizer.h"

#include <algorithm>
#include <bitset>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace glimpse {
namespace {

using Cp = char32_t;
using Text = std::u32string;

// ---- character classes ---------------------------------------------------------------------

// What the lexer makes of a character from U+0080 up that no rule names: a letter anywhere in a
// word (kLetter), a letter only inside its plain WORD rule, never right after a digit
// (kWordOnly: combining marks and the like), a digit, a token of its own, or nothing (dropped).
enum CharClass : uint8_t { kNone = 0, kLetter = 1, kWordOnly = 2, kDigit = 4, kSymbol = 8 };

struct ClassRange {
    Cp first, last;
    CharClass cls;
};
struct LowerRun {
    Cp first;
    int count, delta, stride;
};
struct UpperRun {
    Cp first;
    int count, stride;
};

#include "models/ptb_tokenizer_tables.inc"

CharClass class_of(Cp c) {
    if (c < 0x80) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return kLetter;
        if (c >= '0' && c <= '9') return kDigit;
        return kNone;
    }
    if (c > 0xFFFF) return kNone;  // the lexer reads UTF-16 units; lone surrogates are dropped
    auto it = std::upper_bound(std::begin(kClassRanges), std::end(kClassRanges), c,
                               [](Cp x, const ClassRange& r) { return x < r.first; });
    if (it == std::begin(kClassRanges)) return kNone;
    --it;
    return c <= it->last ? it->cls : kNone;
}

template <typename Run>
const Run* find_run(const Run* begin, const Run* end, Cp c) {
    auto it = std::upper_bound(begin, end, c, [](Cp x, const Run& r) { return x < r.first; });
    if (it == begin) return nullptr;
    --it;
    if (c - it->first >= static_cast<Cp>(it->count) * it->stride) return nullptr;
    if ((c - it->first) % it->stride != 0) return nullptr;
    return &*it;
}

// The lexer's own notion of an upper-case letter (older than today's Unicode).
bool lexer_upper(Cp c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z';
    return find_run(std::begin(kUpperRuns), std::end(kUpperRuns), c) != nullptr;
}

Cp java_lower_char(Cp c) {
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    const LowerRun* run = find_run(std::begin(kLowerRuns), std::end(kLowerRuns), c);
    return run ? static_cast<Cp>(static_cast<int64_t>(c) + run->delta) : c;
}

// ---- UTF-8 ---------------------------------------------------------------------------------

Text decode_utf8(std::string_view s) {
    Text out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
        Cp c = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
        bool ok = len > 0 && i + len <= s.size();
        for (int k = 1; ok && k < len; ++k) {
            const auto cont = static_cast<unsigned char>(s[i + k]);
            ok = (cont & 0xC0) == 0x80;
            c = (c << 6) | (cont & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not characters either.
        static constexpr Cp kMin[] = {0, 0, 0x80, 0x800, 0x10000};
        ok = ok && c >= kMin[len] && c <= 0x10FFFF && !(c >= 0xD800 && c <= 0xDFFF);
        if (!ok) {
            out.push_back(0xFFFD);
            ++i;
            continue;
        }
        out.push_back(c);
        i += len;
    }
    return out;
}

void append_utf8(std::string& out, Cp c) {
    if (c < 0x80) {
        out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (c >> 6)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (c >> 12)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (c >> 18)));
        out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
}

std::string encode_utf8(const Text& text) {
    std::string out;
    out.reserve(text.size());
    for (Cp c : text) append_utf8(out, c);
    return out;
}

// Java lower-cases a token as a whole: İ becomes two characters, and Σ is ς at the end of a word
// (a cased letter before it in the word, none after it). Java finds the word with its word
// BreakIterator; here a word is letters, marks and digits, joined by one of . ' ’ - ‐ – _ between
// two letters, and ideographs stand alone, which is what that iterator does on
// the cases tests/test_ptb_tokenizer.cpp checks.
bool is_cased(Cp c) {
    if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    return c <= 0xFFFF && find_run(std::begin(kCasedRuns), std::end(kCasedRuns), c) != nullptr;
}

bool is_ideograph(Cp c) { return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xF900 && c <= 0xFAFF); }

bool is_word_char(Cp c) {
    const bool super_or_subscript_digit = c == 0xB2 || c == 0xB3 || c == 0xB9 || (c >= 0x2070 && c <= 0x2079) ||
                                          (c >= 0x2080 && c <= 0x2089);
    const bool invisible = c == 0xAD || (c >= 0x200B && c <= 0x200F) || c == 0xFEFF;
    return ((class_of(c) & (kLetter | kWordOnly | kDigit)) != 0 && !is_ideograph(c)) || super_or_subscript_digit ||
           invisible;
}

bool is_letter_char(Cp c) { return (class_of(c) & (kLetter | kWordOnly)) != 0 && !is_ideograph(c); }

bool is_word_joiner(Cp c) {
    return c == '.' || c == '\'' || c == '-' || c == '_' || c == 0x2019 || c == 0x2010 || c == 0x2013;
}

bool final_sigma(const Text& s, size_t at) {
    bool cased_before = false;
    for (size_t i = at; i > 0 && !cased_before; --i) {
        const Cp c = s[i - 1];
        if (is_word_joiner(c) && i >= 2 && is_letter_char(s[i - 2]) && is_letter_char(s[i])) continue;
        if (!is_word_char(c)) break;
        cased_before = is_cased(c);
    }
    if (!cased_before) return false;
    for (size_t i = at + 1; i < s.size(); ++i) {
        const Cp c = s[i];
        if (is_word_joiner(c) && i + 1 < s.size() && is_letter_char(s[i + 1]) && is_letter_char(s[i - 1])) continue;
        if (!is_word_char(c)) break;
        if (is_cased(c)) return false;
    }
    return true;
}

Text java_lower(const Text& in) {
    Text out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        const Cp c = in[i];
        if (c == 0x130) {
            out.push_back('i');
            out.push_back(0x307);
        } else if (c == 0x3A3) {
            out.push_back(final_sigma(in, i) ? 0x3C2 : 0x3C3);
        } else {
            out.push_back(java_lower_char(c));
        }
    }
    return out;
}

// ---- patterns ------------------------------------------------------------------------------

// A set of characters: ASCII by bitmap, the rest by class and explicit ranges; optionally negated.
class CharSet {
public:
    CharSet& add(std::u32string_view chars) {
        for (Cp c : chars) range(c, c);
        return *this;
    }
    CharSet& range(Cp first, Cp last) {
        for (Cp c = first; c <= last && c < 0x80; ++c) ascii_.set(c);
        if (last >= 0x80) ranges_.emplace_back(std::max<Cp>(first, 0x80), last);
        return *this;
    }
    CharSet& classes(uint8_t mask) {
        classes_ |= mask;
        return *this;
    }
    CharSet& negate() {
        negated_ = !negated_;
        return *this;
    }
    bool contains(Cp c) const {
        bool in = c < 0x80 ? ascii_.test(c) : false;
        if (!in && classes_ != 0) in = (class_of(c) & classes_) != 0;
        if (!in && c >= 0x80)
            for (const auto& [first, last] : ranges_)
                if (c >= first && c <= last) {
                    in = true;
                    break;
                }
        return in != negated_;
    }

private:
    std::bitset<128> ascii_;
    std::vector<std::pair<Cp, Cp>> ranges_;
    uint8_t classes_ = 0;
    bool negated_ = false;
};

// Sets of end positions are tiny (captions are short), so a sorted vector does.
using Ends = std::vector<uint32_t>;

void normalize(Ends& ends) {
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
}

struct Node {
    enum Kind { kSet, kLiteral, kSequence, kAlternative, kRepeat, kUpperCase } kind;
    CharSet set;
    Text literal;
    bool caseless = true;
    std::vector<const Node*> parts;
    int min = 0, max = 0;  // kRepeat; max < 0: unbounded
    // Which characters can begin a match (ASCII exactly, anything else conservatively), and
    // whether the empty string matches: lets the lexer skip most rules at once.
    std::bitset<128> first_ascii;
    bool first_other = false;
    bool nullable = false;
    bool analysed = false;
    // For an alternative of many non-empty parts: the parts that can start with each ASCII
    // character, and (index 128) those that can start with anything else.
    std::vector<std::vector<const Node*>> by_first;
};

Cp ascii_fold(Cp c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

void analyse(Node* node) {
    if (node->analysed) return;
    node->analysed = true;
    switch (node->kind) {
        case Node::kSet:
            for (Cp c = 0; c < 128; ++c) node->first_ascii[c] = node->set.contains(c);
            node->first_other = true;
            return;
        case Node::kUpperCase:
            for (Cp c = 'A'; c <= 'Z'; ++c) node->first_ascii.set(c);
            node->first_other = true;
            return;
        case Node::kLiteral:
            if (node->literal.empty()) {
                node->nullable = true;
            } else if (node->literal[0] >= 128) {
                node->first_other = true;
            } else {
                const Cp c = node->literal[0];
                node->first_ascii.set(c);
                if (node->caseless) {
                    node->first_ascii.set(ascii_fold(c));
                    if (c >= 'a' && c <= 'z') node->first_ascii.set(c - 32);
                }
            }
            return;
        case Node::kSequence:
            node->nullable = true;
            for (const Node* part : node->parts) {
                Node* child = const_cast<Node*>(part);
                analyse(child);
                node->first_ascii |= child->first_ascii;
                node->first_other = node->first_other || child->first_other;
                if (!child->nullable) {
                    node->nullable = false;
                    break;
                }
            }
            return;
        case Node::kAlternative:
        case Node::kRepeat:
            for (const Node* part : node->parts) {
                Node* child = const_cast<Node*>(part);
                analyse(child);
                node->first_ascii |= child->first_ascii;
                node->first_other = node->first_other || child->first_other;
                node->nullable = node->nullable || child->nullable;
            }
            if (node->kind == Node::kRepeat && node->min == 0) node->nullable = true;
            if (node->kind == Node::kAlternative && node->parts.size() > 4 && !node->nullable) {
                node->by_first.resize(129);
                for (const Node* part : node->parts) {
                    for (Cp c = 0; c < 128; ++c)
                        if (part->first_ascii.test(c)) node->by_first[c].push_back(part);
                    if (part->first_other) node->by_first[128].push_back(part);
                }
            }
            return;
    }
}

bool can_start(const Node* node, const Text& s, uint32_t pos) {
    if (node->nullable) return true;
    if (pos >= s.size()) return false;
    return s[pos] < 128 ? node->first_ascii.test(s[pos]) : node->first_other;
}

// Scratch vectors for the matcher, reused from call to call so that matching allocates almost
// nothing; one pool per thread, so tokenizing on several threads at once is safe.
class Scratch {
public:
    Ends& take() {
        if (top_ == pool_.size()) pool_.emplace_back();
        Ends& e = pool_[top_++];
        e.clear();
        return e;
    }
    void give_back(size_t n) { top_ -= n; }

private:
    std::deque<Ends> pool_;
    size_t top_ = 0;
};

thread_local Scratch scratch;

// Borrows `n` scratch vectors for the enclosing scope.
struct Borrowed {
    explicit Borrowed(size_t n) : count(n) {}
    ~Borrowed() { scratch.give_back(count); }
    Borrowed(const Borrowed&) = delete;
    Borrowed& operator=(const Borrowed&) = delete;
    size_t count;
};

void match(const Node* node, const Text& s, uint32_t pos, Ends& out);

void match_all(const Node* node, const Text& s, const Ends& from, Ends& out) {
    for (uint32_t pos : from) match(node, s, pos, out);
    normalize(out);
}

// Appends every end position of a match of `node` starting at `pos`.
void match(const Node* node, const Text& s, uint32_t pos, Ends& out) {
    switch (node->kind) {
        case Node::kSet:
            if (pos < s.size() && node->set.contains(s[pos])) out.push_back(pos + 1);
            return;
        case Node::kUpperCase:
            if (pos < s.size() && lexer_upper(s[pos])) out.push_back(pos + 1);
            return;
        case Node::kLiteral: {
            // The lexer is case-insensitive for literal text (not for character sets).
            if (pos + node->literal.size() > s.size()) return;
            for (size_t i = 0; i < node->literal.size(); ++i) {
                const Cp a = s[pos + i], b = node->literal[i];
                if (node->caseless ? ascii_fold(a) != ascii_fold(b) : a != b) return;
            }
            out.push_back(pos + static_cast<uint32_t>(node->literal.size()));
            return;
        }
        case Node::kSequence: {
            Borrowed borrowed(2);
            Ends* current = &scratch.take();
            Ends* next = &scratch.take();
            current->push_back(pos);
            for (const Node* part : node->parts) {
                next->clear();
                match_all(part, s, *current, *next);
                if (next->empty()) return;
                std::swap(current, next);
            }
            out.insert(out.end(), current->begin(), current->end());
            return;
        }
        case Node::kAlternative:
            if (node->by_first.empty()) {
                for (const Node* part : node->parts) match(part, s, pos, out);
            } else if (pos < s.size()) {  // long lists of literals: only those starting right
                const Cp c = s[pos];
                for (const Node* part : c < 128 ? node->by_first[c] : node->by_first[128]) match(part, s, pos, out);
            }
            return;
        case Node::kRepeat: {
            if (node->min == 0) out.push_back(pos);
            const Node* part = node->parts[0];
            if (part->kind == Node::kSet) {  // the common case: a run of characters from a set
                uint32_t end = pos;
                for (int count = 1; (node->max < 0 || count <= node->max) && end < s.size() &&
                                    part->set.contains(s[end]);
                     ++count) {
                    ++end;
                    if (count >= node->min) out.push_back(end);
                }
                return;
            }
            Borrowed borrowed(4);
            Ends* current = &scratch.take();
            Ends* next = &scratch.take();
            Ends* seen = &scratch.take();
            Ends* merged = &scratch.take();
            current->push_back(pos);
            for (int count = 1; node->max < 0 || count <= node->max; ++count) {
                next->clear();
                match_all(part, s, *current, *next);
                // Past the minimum, a position already reached needs no second visit.
                if (count > node->min)
                    next->erase(std::remove_if(next->begin(), next->end(),
                                           [&](uint32_t e) { return std::binary_search(seen->begin(), seen->end(), e); }),
                            next->end());
                if (next->empty()) break;
                if (count >= node->min) {
                    out.insert(out.end(), next->begin(), next->end());
                    merged->clear();
                    std::merge(seen->begin(), seen->end(), next->begin(), next->end(), std::back_inserter(*merged));
                    std::swap(seen, merged);
                }
                std::swap(current, next);
            }
            return;
        }
    }
}

// Owns the pattern nodes and builds them.
class Patterns {
public:
    const Node* set(CharSet chars) {
        Node& n = make(Node::kSet);
        n.set = std::move(chars);
        return &n;
    }
    const Node* chars(std::u32string_view list) { return set(CharSet().add(list)); }
    const Node* upper_case() { return &make(Node::kUpperCase); }
    // Literal text, matched without regard to ASCII case unless `caseless` is false.
    const Node* lit(std::u32string_view text, bool caseless = true) {
        Node& n = make(Node::kLiteral);
        n.literal = Text(text);
        n.caseless = caseless;
        return &n;
    }
    const Node* seq(std::initializer_list<const Node*> parts) { return group(Node::kSequence, parts); }
    const Node* alt(std::initializer_list<const Node*> parts) { return group(Node::kAlternative, parts); }
    const Node* alt(const std::vector<const Node*>& parts) {
        Node& n = make(Node::kAlternative);
        n.parts = parts;
        return &n;
    }
    // Any of the words, case-insensitively.
    const Node* words(std::initializer_list<std::u32string_view> list) {
        std::vector<const Node*> parts;
        for (std::u32string_view w : list) parts.push_back(lit(w));
        return alt(parts);
    }
    const Node* rep(const Node* part, int min, int max) {
        Node& n = make(Node::kRepeat);
        n.parts = {part};
        n.min = min;
        n.max = max;
        return &n;
    }
    const Node* opt(const Node* part) { return rep(part, 0, 1); }
    const Node* star(const Node* part) { return rep(part, 0, -1); }
    const Node* plus(const Node* part) { return rep(part, 1, -1); }

private:
    Node& make(Node::Kind kind) {
        nodes_.emplace_back();
        nodes_.back().kind = kind;
        return nodes_.back();
    }
    const Node* group(Node::Kind kind, std::initializer_list<const Node*> parts) {
        Node& n = make(kind);
        n.parts.assign(parts.begin(), parts.end());
        return &n;
    }
    std::deque<Node> nodes_;
};

// ---- the lexer -----------------------------------------------------------------------------

constexpr Cp kLineBreak = U'\n';

// What a rule does with the text it matched: the token(s) to write, and how much of the match to
// keep (the rest is read again, like JFlex's yypushback).
struct Emit {
    std::vector<Text> tokens;
    size_t keep = 0;  // characters consumed; 0 means all
};
using Action = std::function<Emit(const Text& matched)>;

struct Rule {
    const char* name;
    const Node* body;
    const Node* trail;  // trailing context, or nullptr
    Action action;
};

Text replace_all(Text s, std::u32string_view from, std::u32string_view to) {
    for (size_t at = s.find(from); at != Text::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
    return s;
}

// The lexer turns quote characters into LaTeX-style ones: ` and `` open, ' and '' close. A straight
// quote's direction comes from the rule that matched it; curly ones carry their own.
Text latex_quotes(Text s, bool probably_left) {
    s = replace_all(s, U"&apos;", U"'");
    s = replace_all(s, U"&quot;", U"\"");
    Text out;
    for (Cp c : s) {
        switch (c) {
            case U'\'': out += probably_left ? U"`" : U"'"; break;
            case U'"': out += probably_left ? U"``" : U"''"; break;
            case 0x91: case 0x2018: case 0x201B: case 0x2039: out += U"`"; break;
            case 0x92: case 0x2019: case 0x203A: out += U"'"; break;
            case 0x93: case 0x201C: case 0xAB: out += U"``"; break;
            case 0x94: case 0x201D: case 0xBB: out += U"''"; break;
            default: out.push_back(c);
        }
    }
    return out;
}

// Soft hyphens (U+00AD) vanish from words and numbers; a token of nothing else is a hyphen.
Text without_soft_hyphens(const Text& s) {
    Text out;
    for (Cp c : s)
        if (c != 0xAD) out.push_back(c);
    return out.empty() ? Text(U"-") : out;
}

Text spaces_to_nbsp(Text s) {
    std::replace(s.begin(), s.end(), U' ', Cp{0xA0});
    return s;
}

Emit token(Text t) { return Emit{{std::move(t)}, 0}; }

class Grammar {
public:
    Grammar() { build(); }
    const std::vector<Rule>& rules() const { return rules_; }

private:
    void rule(const char* name, const Node* body, const Node* trail, Action action) {
        analyse(const_cast<Node*>(body));
        if (trail) analyse(const_cast<Node*>(trail));
        rules_.push_back(Rule{name, body, trail, std::move(action)});
    }
    void build();

    Patterns p_;
    std::vector<Rule> rules_;
};

void Grammar::build() {
    Patterns& p = p_;
    const auto as_is = [](const Text& t) { return token(t); };
    const auto soft = [](const Text& t) { return token(without_soft_hyphens(t)); };
    const auto quote_right = [](const Text& t) { return token(latex_quotes(t, false)); };
    const auto quote_left = [](const Text& t) { return token(latex_quotes(t, true)); };
    const auto drop = [](const Text&) { return Emit{}; };

    // Character sets.
    const auto not_in = [&](std::u32string_view chars) { return p.set(CharSet().add(chars).negate()); };
    const CharSet space_set = CharSet().add(U" \t\u00A0\u3000").range(0x2000, 0x200A);
    const CharSet newline_set = CharSet().add(U"\r\n\u2028\u2029\u000B\u000C\u0085");
    CharSet space_nl_set = space_set;
    space_nl_set.add(U"\r\n\u2028\u2029\u000B\u000C\u0085");
    const Node* space = p.set(space_set);
    const Node* spaces = p.plus(space);
    const Node* space_nl = p.set(space_nl_set);
    const Node* newline = p.set(newline_set);
    const Node* ascii_letter = p.set(CharSet().range('a', 'z').range('A', 'Z'));
    const Node* ascii_upper = p.set(CharSet().range('A', 'Z'));
    const Node* ascii_alnum = p.set(CharSet().range('a', 'z').range('A', 'Z').range('0', '9'));
    const Node* ascii_digit = p.set(CharSet().range('0', '9'));
    const Node* letter = p.set(CharSet().classes(kLetter));                    // [:letter:]
    const Node* digit = p.set(CharSet().classes(kDigit));                      // [:digit:]
    const Node* letter_or_digit = p.set(CharSet().classes(kLetter | kDigit));
    const Node* any = p.set(CharSet().negate());

    // &eacute; and its kind count as letters inside words.
    const Node* entity_letter = p.seq({p.lit(U"&"), p.chars(U"aeiouAEIOU"),
                                       p.words({U"acute", U"grave", U"uml"}), p.lit(U";")});
    const Node* word_letter = p.alt({p.set(CharSet().classes(kLetter | kWordOnly).add(U"\u00AD")), entity_letter});
    const Node* word_part = p.seq({word_letter, p.star(p.alt({word_letter, digit}))});
    // A word: letters, then letters or digits; . ! ? may join such parts ("a.b", "yahoo!com").
    const Node* word = p.seq({word_part, p.star(p.seq({p.chars(U".!?"), word_part}))});

    const Node* apos = p.alt({p.chars(U"'\u0092\u2019"), p.lit(U"&apos;")});
    const Node* apos_etc = p.alt({apos, p.chars(U"`\u0091\u2018\u201B")});
    const Node* hyphen = p.chars(U"-_\u058A\u2010\u2011");

    // Contractions split off a word: 's 'm 'd 're 've 'll, and n't.
    const Node* redaux = p.seq({apos, p.alt({p.chars(U"msdMSD"), p.words({U"re", U"ve", U"ll"})})});
    const Node* sword = p.seq({p.star(p.set(CharSet().range('a', 'z').range('A', 'Z').add(U"\u00AD"))),
                               p.set(CharSet().range('A', 'M').range('O', 'Z').range('a', 'm').range('o', 'z')),
                               p.star(p.chars(U"\u00AD"))});
    const Node* sredaux = p.seq({p.lit(U"n"), apos_etc, p.lit(U"t")});

    const Node* num = p.alt({p.plus(digit),
                             p.seq({p.star(digit), p.plus(p.seq({p.chars(U".:,\u00AD\u066B\u066C"), p.plus(digit)}))})});
    const Node* number = p.seq({p.opt(p.chars(U"-+")), num});

    // Single letters with periods: "U.S", "a.k.a" (the final period is matched separately).
    const Node* acro = p.alt({
        p.seq({ascii_letter, p.star(p.seq({p.lit(U"."), ascii_letter}))}),
        p.seq({p.words({U"Canada", U"Sino", U"Korean", U"EU", U"Japan", U"non"}), p.lit(U"-U.S")}),
        p.seq({p.lit(U"U.S.-"), p.words({U"U.K", U"U.S.S.R"})}),
    });
    const Node* acro2 = p.alt({
        p.seq({ascii_letter, p.plus(p.seq({p.lit(U"."), ascii_letter}))}),
        p.seq({p.words({U"Canada", U"Sino", U"Korean", U"EU", U"Japan", U"non"}), p.lit(U"-U.S")}),
        p.seq({p.lit(U"U.S.-"), p.words({U"U.K", U"U.S.S.R"})}),
    });

    // A capitalised word: its first letter must be upper case, the rest in any case.
    const auto capitalised = [&](std::u32string_view w) {
        return p.seq({p.lit(w.substr(0, 1), false), p.lit(w.substr(1))});
    };
    const auto capitalised_words = [&](std::initializer_list<std::u32string_view> list) {
        std::vector<const Node*> parts;
        for (std::u32string_view w : list) parts.push_back(capitalised(w));
        return p.alt(parts);
    };

    // Abbreviations after which a capital letter (or a blank line, or the end of the text)
    // starts a new sentence: the period is then also a token of its own.
    const Node* abbrev1 = p.seq({p.alt({
        p.words({U"Jan", U"Feb", U"Mar", U"Apr", U"Jun", U"Jul", U"Aug", U"Sep", U"Sept", U"Oct", U"Nov",
                 U"Dec", U"Mon", U"Tue", U"Tues", U"Wed", U"Thu", U"Thurs", U"Fri"}),
        p.words({U"Ala", U"Ariz", U"Calif", U"Colo", U"Conn", U"Ct", U"Dak", U"Fla", U"Ga", U"Ind", U"Kan",
                 U"Kans", U"Ky", U"Md", U"Mich", U"Minn", U"Mo", U"Mont", U"Neb", U"Nev", U"Okla", U"Penn",
                 U"Tenn", U"Va", U"Vt", U"Wis", U"Wisc", U"Wyo"}),
        capitalised_words({U"Az", U"Ark", U"Del", U"Ill", U"La", U"Mass", U"Miss", U"Ore", U"Pa", U"Tex", U"Wash"}),
        p.words({U"Inc", U"Co", U"Cos", U"Corp", U"Ltd", U"Plc", U"Rt", U"Bancorp", U"Bhd", U"Assn", U"Univ",
                 U"Intl", U"Sys"}),
        // Pty, Ptys, Pte, Ppty...: the y or e in lower case only.
        p.seq({p.lit(U"P"), p.opt(p.lit(U"p")), p.lit(U"t"), p.chars(U"ye"), p.opt(p.lit(U"s"))}),
        p.words({U"tel", U"est", U"ext", U"sq", U"Jr", U"Sr", U"Bros", U"Ed.D", U"Ph.D", U"Blvd", U"Rd",
                 U"Esq", U"etc", U"al", U"seq", U"Bldg"}),
    }), p.lit(U".")});

    // Abbreviations normally followed by a name or number: the period stays, no sentence end.
    const Node* abtitle = p.alt({
        p.words({U"Mr", U"Mrs", U"Ms", U"Dr", U"Drs", U"Prof", U"Profs", U"Sen", U"Sens", U"Rep", U"Reps",
                 U"Atty", U"Attys", U"Lt", U"Col", U"Gen", U"Messrs", U"Gov", U"Govs", U"Adm", U"Rev",
                 U"Maj", U"Sgt", U"Cpl", U"Pvt", U"Capt", U"St", U"Ste", U"Ave", U"Pres", U"Lieut", U"Hon",
                 U"Brig", U"Cmdr", U"Comdr", U"Pfc", U"Spc", U"Supt", U"Supts", U"Det", U"Mt", U"Ft",
                 U"Adj", U"Adv", U"Asst", U"Assoc", U"Ens", U"Insp", U"Mlle", U"Mme", U"Msgr", U"Sfc"}),
        capitalised(U"Miss"),
    });
    const Node* abbrev4 = p.alt({abtitle,
                                 p.words({U"vs", U"Alex", U"Wm", U"Jos", U"Cie", U"a.k.a", U"cf", U"TREAS",
                                          U"Ph", U"Invt", U"Elec", U"Natl", U"Dept"}),
                                 p.seq({p.lit(U"M"), p.chars(U"ft"), p.lit(U"g")}),  // f, t: lower case only
                                 p.lit(U"v", false), acro});
    const Node* abbrev2 = p.seq({abbrev4, p.lit(U".")});
    const Node* acronym = p.seq({acro, p.lit(U".")});
    // Abbreviations kept only before a number: "fig. 3", "No. 5".
    const Node* abbrev3 = p.seq({p.words({U"ca", U"fig", U"figs", U"prop", U"no", U"nos", U"art", U"pp", U"op"}),
                                 p.lit(U".")});

    // An SGML/HTML tag: "<b>", "</a >", "<img src='x y'/>", "<!-- x -->". A quoted attribute value
    // may run over a line break, which then stays inside the token.
    const CharSet ascii_alnum_set = CharSet().range('a', 'z').range('A', 'Z').range('0', '9');
    const Node* tag_name = p.seq({ascii_letter, p.star(p.set(CharSet(ascii_alnum_set).add(U"_:.-")))});
    const Node* blanks = p.star(p.lit(U" "));
    const Node* quoted_value = p.alt({p.seq({p.lit(U"'"), p.star(not_in(U"'")), p.lit(U"'")}),
                                      p.seq({p.lit(U"\""), p.star(not_in(U"\"")), p.lit(U"\"")})});
    const Node* attribute = p.alt({tag_name, p.seq({tag_name, blanks, p.lit(U"="), blanks, quoted_value})});
    const Node* sgml = p.seq({p.lit(U"<"),
                              p.alt({p.seq({p.chars(U"!?"), p.set(CharSet().range('a', 'z').range('A', 'Z').add(U"-")),
                                            p.star(not_in(U">\r\n"))}),
                                     p.seq({tag_name, p.star(p.seq({p.plus(p.lit(U" ")), attribute})), blanks,
                                            p.opt(p.lit(U"/"))}),
                                     p.seq({p.lit(U"/"), tag_name})}),
                              blanks, p.lit(U">")});

    // Words (and tags) after which an acronym's period also ends the sentence: "the U.S. The".
    const Node* sentence_openers = p.alt({
        capitalised_words({U"About", U"According", U"Additionally", U"After", U"An", U"A", U"As", U"At",
                           U"But", U"Earlier", U"He", U"Her", U"Here", U"However", U"If", U"In", U"It",
                           U"Last", U"Many", U"More", U"Mr.", U"Ms.", U"Now", U"Once", U"One", U"Other",
                           U"Our", U"She", U"Since", U"So", U"Some", U"Such", U"That", U"The", U"Their",
                           U"Then", U"There", U"These", U"They", U"This", U"We", U"When", U"While",
                           U"What", U"Yet", U"You"}),
        sgml,
    });

    const Node* sentence_end = p.seq({space_nl, p.alt({space_nl, p.upper_case(), sgml})});

    // URL and e-mail character sets.
    const Node* url_char = not_in(U" \t\n\f\r\"<>|()");
    const Node* url_end = not_in(U" \t\n\f\r\"<>|.!?(){},-");
    const Node* full_url = p.seq({p.lit(U"http"), p.opt(p.lit(U"s")), p.lit(U"://"),
                                  p.plus(not_in(U" \t\n\f\r\"<>|(){}")), url_end});
    const Node* www_label = p.plus(not_in(U" \t\n\f\r\"<>|.!?(){},"));
    // A domain label may not hold any of , through _ (a range: digits and capitals included).
    const Node* domain_label = p.plus(p.set(CharSet().add(U" \t\n\f\r\"`'<>|.!?(){}$").range(',', '_').negate()));
    const Node* likely_url = p.seq({
        p.alt({p.seq({p.lit(U"www."), p.plus(p.seq({www_label, p.lit(U".")})), p.rep(ascii_letter, 2, 4)}),
               p.seq({p.plus(p.seq({domain_label, p.lit(U".")})), p.words({U"com", U"net", U"org", U"edu"})})}),
        p.opt(p.seq({p.lit(U"/"), p.plus(url_char), url_end})),
    });
    const Node* email_char = not_in(U" \t\n\f\r\"<>|(){}\u00A0");
    const Node* email_label = p.plus(not_in(U" \t\n\f\r\"<>|(){}.\u00A0"));
    const Node* email = p.seq({p.opt(p.alt({p.lit(U"<"), p.lit(U"&lt;")})), ascii_alnum, p.star(email_char), p.lit(U"@"),
                               p.star(p.seq({email_label, p.lit(U".")})), email_label,
                               p.opt(p.alt({p.lit(U">"), p.lit(U"&gt;")}))});
    const Node* twitter = p.alt({
        p.seq({p.lit(U"@"), p.set(CharSet().range('a', 'z').range('A', 'Z').add(U"_")),
               p.star(p.set(CharSet().range('a', 'z').range('A', 'Z').range('0', '9').add(U"_")))}),
        p.seq({p.lit(U"#"), p.plus(word_letter)}),
    });

    const Node* date = p.seq({p.rep(digit, 1, 2), p.chars(U"-/"), p.rep(digit, 1, 2), p.chars(U"-/"),
                              p.rep(digit, 2, 4)});
    const Node* subsup = p.seq({p.opt(p.chars(U"\u207A\u207B\u208A\u208B")),
                                p.alt({p.plus(p.set(CharSet().add(U"\u2070\u00B9\u00B2\u00B3").range(0x2074, 0x2079))),
                                       p.plus(p.set(CharSet().range(0x2080, 0x2089)))})});
    const Node* frac = p.seq({p.opt(p.seq({p.rep(digit, 1, 4), p.chars(U"- \u00A0")})), p.rep(digit, 1, 4),
                              p.alt({p.seq({p.opt(p.lit(U"\\")), p.lit(U"/")}), p.lit(U"\u2044")}), p.rep(digit, 1, 4)});
    const Node* frac2 = p.set(CharSet().add(U"\u00BC\u00BD\u00BE").range(0x2153, 0x215E));
    const Node* dolsign = p.alt({p.seq({p.star(ascii_upper), p.lit(U"$")}), p.lit(U"#")});
    const Node* dolsign2 =
        p.chars(U"\u00A2\u00A3\u00A4\u00A5\u0080\u20A0\u20AC\u060B\u0E3F\u20A4\uFFE0\uFFE1\uFFE5\uFFE6");

    const Node* thing_part =
        p.seq({p.opt(p.seq({p.chars(U"dDoOlL"), apos_etc, letter_or_digit})), p.plus(letter_or_digit)});
    const Node* thing = p.seq({thing_part, p.star(p.seq({hyphen, thing_part}))});
    const Node* thinga =
        p.seq({p.plus(ascii_upper), p.plus(p.seq({p.alt({p.chars(U"+&"), p.lit(U"&amp;")}), p.plus(ascii_upper)}))});
    const Node* alpha_hyphens = p.rep(p.seq({p.lit(U"-"), p.plus(ascii_letter)}), 0, 2);
    const Node* thing3 = p.seq({p.plus(ascii_alnum), alpha_hyphens,
                                p.rep(p.seq({p.opt(p.lit(U"\\")), p.lit(U"/"), p.plus(ascii_alnum), alpha_hyphens}),
                                      1, 2)});
    const Node* hthing_tail =
        p.alt({p.plus(p.set(CharSet(ascii_alnum_set).add(U"\u00AD"))), p.seq({acro2, p.lit(U".")})});
    const Node* hthing = p.seq({ascii_alnum, p.star(p.set(CharSet(ascii_alnum_set).add(U".,\u00AD"))),
                                p.plus(p.seq({p.lit(U"-"), hthing_tail}))});

    const Node* apoword = p.alt({
        p.seq({apos, p.lit(U"n"), p.opt(apos)}),
        p.seq({p.chars(U"lLdDjJ"), apos}),
        p.seq({p.words({U"Dunkin", U"somethin", U"ol"}), apos}),
        p.seq({apos, p.lit(U"em")}),
        p.seq({p.set(CharSet().range('A', 'H').range('J', 'X').add(U"Zn")), apos_etc, letter, letter, p.star(letter)}),
        p.seq({apos, p.set(CharSet().range('2', '9')), p.lit(U"0s")}),
        p.seq({apos, p.lit(U"til"), p.opt(p.lit(U"l"))}),
        p.seq({letter, p.star(letter), p.chars(U"aeiouyAEIOUY"), apos_etc, p.set(CharSet().add(U"aeiou").range('A', 'Z')),
               p.star(letter)}),
        p.seq({apos, p.lit(U"cause")}),
        p.seq({p.lit(U"cont'd"), p.opt(p.lit(U"."))}),
        p.words({U"'twas", U"nor'easter", U"c'mon", U"e'er", U"s'mores", U"ev'ry", U"li'l", U"nat'l"}),
        p.seq({p.lit(U"O"), apos_etc, p.lit(U"o")}),
    });
    const Node* phone = p.alt({
        p.seq({p.alt({p.seq({p.lit(U"("), p.rep(ascii_digit, 2, 3), p.lit(U")"), p.opt(p.chars(U" \u00A0"))}),
                      p.seq({p.opt(p.seq({p.lit(U"+"), p.opt(p.lit(U"+"))})),
                             p.opt(p.seq({p.rep(ascii_digit, 2, 4), p.chars(U"- \u00A0")})),
                             p.rep(ascii_digit, 2, 4), p.chars(U"- \u00A0")})}),
               p.rep(ascii_digit, 3, 4), p.opt(p.chars(U"- \u00A0")), p.rep(ascii_digit, 3, 5)}),
        p.seq({p.opt(p.seq({p.opt(p.seq({p.lit(U"+"), p.opt(p.lit(U"+"))})), p.rep(ascii_digit, 2, 4), p.lit(U".")})),
               p.rep(ascii_digit, 2, 4), p.lit(U"."), p.rep(ascii_digit, 3, 4), p.lit(U"."), p.rep(ascii_digit, 3, 5)}),
    });
    const Node* ldots = p.alt({p.rep(p.lit(U"."), 3, 5),
                               p.seq({p.rep(p.seq({p.lit(U"."), p.chars(U" \u00A0")}), 2, 4), p.lit(U".")}),
                               p.chars(U"\u0085\u2026")});
    const Node* insentp = p.chars(U",;:\u3001");
    const Node* quotes = p.alt({apos, p.lit(U"''"),
                                p.rep(p.chars(U"`\u2018\u2019\u201A\u201B\u201C\u201D\u0091\u0092\u0093\u0094"
                                              U"\u201E\u201F\u2039\u203A\u00AB\u00BB"),
                                      1, 2)});
    const Node* dblquot = p.alt({p.lit(U"\""), p.lit(U"&quot;")});
    const Node* tbspec = p.alt({
        p.seq({p.lit(U"-"), p.words({U"RRB", U"LRB", U"RCB", U"LCB", U"RSB", U"LSB"}), p.lit(U"-")}),
        p.words({U"C.D.s", U"pro-", U"anti-", U"S&P-500", U"S&amp;P-500", U"S&Ls", U"S&amp;Ls"}),
        p.seq({p.lit(U"Cap"), apos, p.lit(U"n")}),
        p.seq({p.lit(U"c"), apos, p.lit(U"est")}),
    });
    // File names with a known extension: "photo.jpg", "5.x".
    const Node* filename_part = p.plus(p.set(CharSet().classes(kLetter | kWordOnly | kDigit)));
    const Node* filename = p.seq({filename_part, p.star(p.seq({p.lit(U"."), filename_part})), p.lit(U"."),
                                  p.words({U"bat", U"bmp", U"c", U"class", U"cgi", U"cpp", U"dll", U"doc", U"docx",
                                           U"exe", U"gif", U"gz", U"h", U"htm", U"html", U"jar", U"java", U"jpeg",
                                           U"jpg", U"mov", U"mp3", U"pdf", U"php", U"pl", U"png", U"ppt", U"ps",
                                           U"py", U"sql", U"tar", U"txt", U"wav", U"x", U"xml", U"zip"})});
    const Node* tbspec2 = p.seq({apos, ascii_digit, ascii_digit});
    const Node* smiley = p.seq({p.opt(p.chars(U"<>")), p.chars(U":;="), p.opt(p.chars(U"-o*'")),
                                p.chars(U"()DPdpO\\{@|[]")});
    // Emoticons of the ^_^ kind: "-_-", "(^_^)", "(^-^)", "(x.x)".
    const Node* eye = p.chars(U"-^x=~<>'");
    const Node* asian_smiley = p.alt({
        p.seq({eye, p.lit(U"_"), eye}),
        p.seq({p.lit(U"("), eye, p.opt(p.chars(U"_.")), eye, p.lit(U")")}),
        p.seq({p.lit(U"("), p.chars(U"^x=~<>'"), p.lit(U"-"), p.chars(U"^x=~<>'`"), p.lit(U")")}),
    });
    const Node* misc_symbol = p.set(CharSet().add(U"+%&~^|\\").classes(kSymbol));

    // ---- the rules, in the lexer's order -----------------------------------------------------

    const auto keep = [](size_t n, const Text& t) { return Emit{{t.substr(0, n)}, n}; };
    rule("cannot", p.words({U"cannot", U"'twas"}), nullptr, [keep](const Text& t) { return keep(t.size() - 3, t); });
    rule("gonna", p.words({U"'tis", U"gonna", U"gotta", U"lemme", U"gimme", U"wanna"}), nullptr,
         [keep](const Text& t) { return keep(t.size() - 2, t); });
    rule("prog_lang", p.words({U"c++", U"c#", U"f#"}), nullptr, as_is);
    rule("sgml", sgml, nullptr, [](const Text& t) { return token(spaces_to_nbsp(t)); });
    rule("dash", p.alt({p.seq({p.lit(U"&"), p.words({U"MD", U"mdash", U"ndash"}), p.lit(U";")}),
                        p.chars(U"\u0096\u0097\u2013\u2014\u2015")}),
         nullptr, [](const Text&) { return token(U"--"); });
    rule("amp", p.lit(U"&amp;"), nullptr, [](const Text&) { return token(U"&"); });
    rule("entity", p.seq({p.lit(U"&"), p.alt({p.words({U"HT", U"TL", U"UR", U"LR", U"QC", U"QL", U"QR", U"odq", U"cdq"}),
                                                p.seq({p.lit(U"#"), p.plus(ascii_digit)})}),
                          p.lit(U";")}),
         nullptr, as_is);
    rule("word_before_clitic", word, redaux, soft);
    rule("word_before_nt", sword, sredaux, soft);
    rule("word", word, nullptr, soft);
    rule("apostrophe_word", apoword, nullptr, as_is);
    rule("y'", p.seq({p.lit(U"y"), apos}), letter, as_is);
    rule("url", full_url, nullptr, as_is);
    rule("likely_url", likely_url, nullptr, as_is);
    rule("email", email, nullptr, as_is);
    rule("twitter", twitter, nullptr, as_is);
    rule("clitic", redaux, p.set(CharSet().range('a', 'z').range('A', 'Z').negate()), quote_right);
    rule("nt", sredaux, nullptr, quote_right);
    rule("date", date, nullptr, as_is);
    rule("number", number, nullptr, soft);
    rule("sub_superscript", subsup, nullptr, as_is);
    rule("fraction", frac, nullptr, [](const Text& t) { return token(spaces_to_nbsp(t)); });
    rule("fraction_char", frac2, nullptr, [](const Text& t) {
        switch (t[0]) {
            case 0xBC: return token(U"1/4");
            case 0xBD: return token(U"1/2");
            case 0xBE: return token(U"3/4");
            case 0x2153: return token(U"1/3");
            case 0x2154: return token(U"2/3");
            default: return token(t);
        }
    });
    rule("treebank_special", tbspec, nullptr, [](const Text& t) { return token(replace_all(t, U"&amp;", U"&")); });
    rule("slashed", thing3, nullptr, as_is);
    rule("dollar", dolsign, nullptr, as_is);
    rule("currency", dolsign2, nullptr, [](const Text& t) {
        switch (t[0]) {
            case 0xA2: return token(U"cents");
            case 0xA3: return token(U"#");
            case 0x80: case 0xA4: case 0x20A0: case 0x20AC: return token(U"$");
            default: return token(t);
        }
    });
    // "U.S." before a word that starts a sentence: "U.S." and "." (the period read twice); a
    // single letter ("I.") gives the letter and the period.
    rule("acronym_sentence_end", acronym, p.seq({p.plus(space_nl), sentence_openers, space_nl}), [](const Text& t) {
        if (t.size() == 2) return Emit{{t.substr(0, 1)}, 1};
        return Emit{{t}, t.size() - 1};
    });
    rule("abbrev_before_number", abbrev3, p.seq({p.opt(space_nl), digit}), as_is);
    // "Pty. Ltd", "Co. Limited": no sentence end inside a company name.
    rule("company", p.seq({p.alt({p.seq({p.lit(U"pt"), p.chars(U"eyEY")}), p.lit(U"co")}), p.lit(U".")}),
         p.seq({space, p.words({U"ltd", U"lim"})}), as_is);
    const auto period_twice = [](const Text& t) { return Emit{{t}, t.size() - 1}; };
    rule("abbrev_sentence_end", abbrev1, sentence_end, period_twice);
    rule("abbrev", abbrev1, p.seq({any, any}), as_is);
    rule("abbrev_at_end", abbrev1, nullptr, period_twice);
    rule("abbrev_title", abbrev2, nullptr, as_is);
    rule("abbrev_before_space", abbrev4, space, as_is);
    rule("acronym_before_space", acro, space_nl, as_is);
    rule("year", tbspec2, space_nl, as_is);
    rule("filename", filename, p.alt({space_nl, p.chars(U".?!,")}), as_is);
    rule("word_period", p.seq({word, p.lit(U".")}), insentp, soft);
    rule("phone", phone, nullptr, [](const Text& t) {
        return token(replace_all(replace_all(spaces_to_nbsp(t), U"(", U"-LRB-"), U")", U"-RRB-"));
    });
    rule("open_quote", dblquot, p.set(CharSet().range('a', 'z').range('A', 'Z').range('0', '9').add(U"$")), quote_left);
    rule("quote", dblquot, nullptr, quote_right);
    rule("delete", p.chars(U"\u007F"), nullptr, drop);
    rule("less_than", p.alt({p.lit(U"<"), p.lit(U"&lt;")}), nullptr, [](const Text&) { return token(U"<"); });
    rule("greater_than", p.alt({p.lit(U">"), p.lit(U"&gt;")}), nullptr, [](const Text&) { return token(U">"); });
    rule("smiley", smiley, p.set(CharSet().range('a', 'z').range('A', 'Z').range('0', '9').negate()), [](const Text& t) {
        return token(replace_all(replace_all(t, U"(", U"-LRB-"), U")", U"-RRB-"));
    });
    rule("asian_smiley", asian_smiley, nullptr, [](const Text& t) {
        return token(replace_all(replace_all(t, U"(", U"-LRB-"), U")", U"-RRB-"));
    });
    rule("brace_open", p.lit(U"{"), nullptr, [](const Text&) { return token(U"-LCB-"); });
    rule("brace_close", p.lit(U"}"), nullptr, [](const Text&) { return token(U"-RCB-"); });
    rule("bracket_open", p.lit(U"["), nullptr, [](const Text&) { return token(U"-LSB-"); });
    rule("bracket_close", p.lit(U"]"), nullptr, [](const Text&) { return token(U"-RSB-"); });
    rule("paren_open", p.lit(U"("), nullptr, [](const Text&) { return token(U"-LRB-"); });
    rule("paren_close", p.lit(U")"), nullptr, [](const Text&) { return token(U"-RRB-"); });
    rule("hyphens", p.plus(p.lit(U"-")), nullptr, [](const Text& t) {
        return token(t.size() >= 3 && t.size() <= 4 ? Text(U"--") : t);
    });
    rule("ellipsis", ldots, nullptr, [](const Text&) { return token(U"..."); });
    rule("marks", p.alt({p.plus(p.lit(U"@")), p.plus(p.lit(U"#")), p.plus(p.lit(U"_"))}), nullptr, as_is);
    rule("asterisks", p.alt({p.plus(p.lit(U"*")), p.rep(p.lit(U"\\*"), 1, 3)}), nullptr, as_is);
    rule("in_sentence_punctuation", insentp, nullptr, as_is);
    rule("bangs", p.plus(p.chars(U"?!")), nullptr, as_is);
    rule("period", p.set(CharSet().add(U".\u00A1\u00BF\u037E\u0589\u061F\u06D4\u07FA\u3002").range(0x700, 0x702)),
         nullptr, as_is);
    rule("equals", p.lit(U"="), nullptr, as_is);
    rule("slash", p.lit(U"/"), nullptr, as_is);
    rule("hyphenated_period", p.seq({hthing, p.lit(U".")}), insentp, soft);
    rule("hyphenated", hthing, nullptr, soft);
    rule("thing_period", p.seq({thing, p.lit(U".")}), insentp, as_is);
    rule("thing", thing, nullptr, as_is);
    const auto unescape_amp = [](const Text& t) { return token(replace_all(t, U"&amp;", U"&")); };
    rule("caps_amp_period", p.seq({thinga, p.lit(U".")}), insentp, unescape_amp);
    rule("caps_amp", thinga, nullptr, unescape_amp);
    rule("open_single_quote", p.lit(U"'"), p.seq({ascii_letter, not_in(U" \t\n\r\u00A0")}), quote_left);
    rule("clitic_any", redaux, nullptr, quote_right);
    rule("quotes", quotes, nullptr, quote_right);
    rule("duck_feet", p.alt({p.lit(U"<<"), p.lit(U">>")}), nullptr, as_is);
    rule("symbol", misc_symbol, nullptr, as_is);
    rule("space", p.alt({p.lit(U"\u0000"), spaces, p.chars(U"\u200B\u200E\u200F\uFEFF")}), nullptr, drop);
    rule("newline", p.alt({p.lit(U"\r\n"), newline}), nullptr, [](const Text&) { return token(Text(1, kLineBreak)); });
    rule("nbsp_entity", p.lit(U"&nbsp;"), nullptr, drop);
    rule("untokenizable", not_in(U"\n"), nullptr, drop);
}

const Grammar& grammar() {
    static const Grammar g;
    return g;
}

// The words the lexer splits: cannot, gonna, gotta, wanna, lemme, gimme, in any case.
bool is_split_word(const Text& text, uint32_t begin, uint32_t end) {
    if (end - begin != 5 && end - begin != 6) return false;
    Text w;
    for (uint32_t i = begin; i < end; ++i) w.push_back(ascii_fold(text[i]));
    return w == U"cannot" || w == U"gonna" || w == U"gotta" || w == U"wanna" || w == U"lemme" || w == U"gimme";
}

// Tokenizes `text` (captions joined by "\n") into one token list per line.
std::vector<std::vector<Text>> lex(const Text& text) {
    const std::vector<Rule>& rules = grammar().rules();
    std::vector<std::vector<Text>> lines(1);
    uint32_t pos = 0;
    Ends body_ends, trail_ends;
    while (pos < text.size()) {
        // Fast path for the common case, a run of ASCII letters followed by a space, a line break
        // or the end: no rule can match more (the rules that look past a word need a period, an
        // apostrophe, @, # or + right after it), and those that match it with a space after
        // ("Mr" as a title, "a" as an acronym) return the same letters. Only the words the lexer
        // splits ("cannot", "gonna"...) need the rules.
        uint32_t run = pos;
        while (run < text.size() && run - pos < 16 &&
               ((text[run] | 0x20) >= 'a' && (text[run] | 0x20) <= 'z'))
            ++run;
        if (run > pos && run - pos < 16 &&
            (run == text.size() || text[run] == ' ' || text[run] == '\t' || text[run] == kLineBreak) &&
            !is_split_word(text, pos, run)) {
            lines.back().push_back(text.substr(pos, run - pos));
            pos = run;
            continue;
        }
        const Rule* best = nullptr;
        uint32_t best_total = pos, best_text_end = pos;
        for (const Rule& r : rules) {
            if (!can_start(r.body, text, pos)) continue;
            body_ends.clear();
            match(r.body, text, pos, body_ends);
            if (body_ends.empty()) continue;
            normalize(body_ends);
            for (uint32_t end : body_ends) {
                uint32_t total = end;
                if (r.trail) {
                    trail_ends.clear();
                    match(r.trail, text, end, trail_ends);
                    if (trail_ends.empty()) continue;
                    total = *std::max_element(trail_ends.begin(), trail_ends.end());
                }
                // Longest overall match wins; the earlier rule keeps a tie. Within one rule the
                // token is the longest body that reaches the best total.
                if (total > best_total || (total == best_total && best == &r && end > best_text_end)) {
                    best = &r;
                    best_total = total;
                    best_text_end = end;
                }
            }
        }
        if (best == nullptr) {  // cannot happen: "untokenizable" takes any character but "\n"
            ++pos;
            continue;
        }
        const Text matched = text.substr(pos, best_text_end - pos);
        Emit emit = best->action(matched);
        for (Text& t : emit.tokens) {
            if (t.size() == 1 && t[0] == kLineBreak) {
                lines.emplace_back();
                continue;
            }
            // A line break inside a token (a tag's quoted attribute) is written as it is, so the
            // token's two halves land on two output lines.
            size_t start = 0;
            for (size_t at = t.find(kLineBreak); at != Text::npos; at = t.find(kLineBreak, start)) {
                if (at > start) lines.back().push_back(t.substr(start, at - start));
                lines.emplace_back();
                start = at + 1;
            }
            if (start < t.size()) lines.back().push_back(t.substr(start));
        }
        pos += static_cast<uint32_t>(emit.keep == 0 ? matched.size() : emit.keep);
    }
    return lines;
}

bool is_java_newline(Cp c) { return c == '\r' || c == 0x0B || c == 0x0C || c == 0x2028 || c == 0x2029; }

// Python's str.isspace(), which rstrip() uses on each output line.
bool is_python_space(Cp c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

std::string java_lowercase(std::string_view utf8) { return encode_utf8(java_lower(decode_utf8(utf8))); }

bool is_coco_punctuation(std::string_view token) {
    for (std::string_view p : {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                               "--", "...", ";"})
        if (token == p) return true;
    return false;
}

std::vector<std::vector<std::string>> ptb_tokenize_batch(const std::vector<std::string>& captions) {
    // The file pycocoevalcap writes: captions joined by "\n", each "\n" inside one a space. The
    // other line breaks of the Java lexer would start a new output line and shift every later
    // caption; here they are spaces too (the documented difference).
    Text file;
    for (size_t i = 0; i < captions.size(); ++i) {
        if (i > 0) file.push_back(kLineBreak);
        for (Cp c : decode_utf8(captions[i])) file.push_back(c == '\n' || is_java_newline(c) ? Cp{' '} : c);
    }
    std::vector<std::vector<Text>> lines = lex(file);
    std::vector<std::vector<std::string>> out(captions.size());
    for (size_t i = 0; i < captions.size() && i < lines.size(); ++i)
        for (const Text& t : lines[i]) out[i].push_back(encode_utf8(java_lower(t)));
    return out;
}

std::vector<std::string> coco_tokenize_batch(const std::vector<std::string>& captions) {
    std::vector<std::string> out;
    out.reserve(captions.size());
    for (const std::vector<std::string>& tokens : ptb_tokenize_batch(captions)) {
        // pycocoevalcap: ' '.join(w for w in line.rstrip().split(' ') if w not in PUNCTUATIONS).
        std::string line;
        for (size_t i = 0; i < tokens.size(); ++i) line += (i ? " " : "") + tokens[i];
        Text decoded = decode_utf8(line);
        while (!decoded.empty() && is_python_space(decoded.back())) decoded.pop_back();
        line = encode_utf8(decoded);
        std::string joined;
        bool first = true;
        size_t start = 0;
        while (true) {
            const size_t space = line.find(' ', start);
            const std::string piece = line.substr(start, space == std::string::npos ? std::string::npos : space - start);
            if (!is_coco_punctuation(piece)) {
                if (!first) joined.push_back(' ');
                joined += piece;
                first = false;
            }
            if (space == std::string::npos) break;
            start = space + 1;
        }
        out.push_back(std::move(joined));
    }
    return out;
}

std::string coco_tokenize(std::string_view caption) {
    return coco_tokenize_batch({std::string(caption)}).front();
}

}  // namespace glimpse
