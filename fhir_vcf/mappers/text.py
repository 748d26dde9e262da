"""Reading facts out of free text: levels, percentages and scores.

Real feeds state findings in report text as often as in codes (input profile, rules 1 and 6). The
parsers here are deliberately conservative: they never invent a level or a number, and they are
case-insensitive. What the text asserts of a mention (negated, hedged, historical, ...) is the one
assertion reader's to say (`assertion.py`).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import re
import string
import sys
from collections.abc import Callable, Iterable
from typing import Any

from fhir_vcf.levels import SACRUM, is_level, level_range, position, sort_levels

# --- case-insensitive patterns, searched cheaply ---
# Python's regex engine finds no first-character shortcut for a case-insensitive alternation: it tries
# every branch at every position. The same pattern in lower case, run on the lower-cased text, is 3-6x
# cheaper. That is exactly the same answer only for ASCII text (IGNORECASE also folds "ſ" to "s", "K"
# to "k", "ı" to "i", which str.lower() does not) and for patterns that lower-casing does not change in
# meaning (no escapes such as \S or \B, no back-references, inline flags or mixed-case ranges).
_CHANGED_BY_LOWER = re.compile(r"\\[A-Z0-9xuUN]|\(\?(?!P<|:|=|!|<=|<!)")  # \S, \B, \1, \x4A; inline flags
_CLASS = re.compile(r"\[\^?\]?(?:\\.|[^\]\\])*\]")  # a character class, "[a-z]", "[^\]]"
_SAME_KIND = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
# The characters outside ASCII that IGNORECASE matches to an ASCII letter (all of Unicode, checked).
_FOLDS_TO_ASCII = frozenset("\u0130\u0131\u017f\u212a")


def _lowered(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """The pattern for lower-cased ASCII text, or None when lower-casing could change its meaning.
    Named groups keep their syntax ("(?P<" is not lowered) when every name is lower case already, so
    that a match on the lower-cased text is read by the same names."""
    source = pattern.pattern
    classes = _CLASS.findall(source)
    mixed_range = any(_mixed_range(c) for c in classes)
    if (not pattern.flags & re.IGNORECASE or mixed_range or _CHANGED_BY_LOWER.search(source)
            or _FOLDS_TO_ASCII.intersection(source) or any(n != n.lower() for n in pattern.groupindex)
            or any("(?p<" in c.lower() for c in classes)):  # "[(?P<]": letters of a class, no group
        return None
    try:
        return re.compile(_NAMED_GROUP.sub("(?P<", source.lower()), pattern.flags & ~re.IGNORECASE)
    except re.error:  # e.g. a "(?P<" after an escaped backslash, left lowered
        return None


_NAMED_GROUP = re.compile(r"(?<!\\)\(\?p<")  # a named group's opening, lowered: "(?p<" (not an escaped "\(")


def _mixed_range(char_class: str) -> bool:
    """Whether a character class may hold a range that lower-casing changes ("[A-z]", "[0-Z]"): any
    hyphen between two characters that are not both lower-case, both upper-case or both digits."""
    body = char_class[1:-1]
    return any(
        ch == "-" and 0 < i < len(body) - 1 and (body[i - 1].isalnum() or body[i + 1].isalnum())
        and not any(body[i - 1] in kind and body[i + 1] in kind for kind in _SAME_KIND)
        for i, ch in enumerate(body)
    )


def ascii_lower(text: str) -> str | None:
    """The text lower-cased, for `Caseless.found`; None when the text is not ASCII (searched as it is)."""
    return text.lower() if text.isascii() else None


class Caseless:
    """A case-insensitive pattern asked only whether it occurs (see `_lowered`): the lower-case form
    on ASCII text, the pattern itself on any other text or when no lower-case form is safe."""

    __slots__ = ("_lower", "pattern")

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self._lower = _lowered(pattern)

    def found(self, text: str, pos: int = 0, endpos: int = sys.maxsize, *, low: str | None = None) -> bool:
        """Whether the pattern occurs in text[pos:endpos] (searched as `re.Pattern.search` does).
        `low`, when given, is `ascii_lower(text)` worked out once by a caller that asks many times."""
        if self._lower is not None:
            if low is None and text.isascii():
                low = text.lower()
            if low is not None:
                return self._lower.search(low, pos, endpos) is not None
        return self.pattern.search(text, pos, endpos) is not None


# --- words a pattern needs: a gate of plain substring tests ---
# A search of a long alternation costs ~0.3 us a character (every branch tried at every position); a
# substring test costs a few ns. `required_words` reads a pattern's parse (the `re` module's own
# parser) for the literal words every match must contain, so a text holding none of them is known to
# hold no match without searching: the gate is derived from the pattern and cannot drift from it.
# Only necessary conditions are derived (a text that passes may still hold no match), on lower-cased
# ASCII text: any other text passes (IGNORECASE folds "ſ" to "s", "K" to "k").
try:
    from re import _constants as _sre  # the node kinds of `re._parser.parse`
    from re import _parser as _sre_parser
except ImportError:  # pragma: no cover  (another Python: every text passes, nothing is lost)
    _sre_parser = None  # type: ignore[assignment]

_EXACT_LIMIT = 32  # at most this many exact strings are followed through a sequence, else it is cut
_CHOICE_LIMIT = 1024  # at most this many needed sets are made of one alternation ...
_CHOICES_KEPT = 4  # ... and the most telling of them kept (every one is needed: fewer only test less)


def required_words(pattern: re.Pattern[str]) -> tuple[frozenset[str], ...] | None:
    """Sets of lower-case words such that every match of the pattern contains a word of each set (all
    sets met); None when no such word can be derived (then nothing may be skipped)."""
    if _sre_parser is None:
        return None
    try:
        parsed = _sre_parser.parse(pattern.pattern, pattern.flags)
        _, clauses = _needs(list(parsed))
    except Exception:  # a parse this reader does not know: no words, every text passes
        return None
    kept = sorted(_minimal(clauses), key=lambda c: (-min(map(len, c)), sorted(c)))  # the telling sets first
    return tuple(kept) or None


def first_chars(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Every character a match of a case-sensitive pattern can start with (read from its parse, as
    `required_words`); None when no small set can be derived: the pattern is case-insensitive, a
    match may be empty, or may start with a character of a category ("\\w") or a negated class."""
    if _sre_parser is None or pattern.flags & re.IGNORECASE:
        return None
    try:
        chars, empty = _starts(list(_sre_parser.parse(pattern.pattern, pattern.flags)))
    except Exception:  # a parse this reader does not know: no set
        return None
    return frozenset(chars) if chars and not empty else None


def first_char_search(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The pattern with a look at the character where a match would start, before any alternative is
    tried: `(?=[...])(?:pattern)` finds exactly the matches of `pattern` (the look only passes
    where one can start), and a long alternation whose every branch opens with a word boundary
    (`_context.compile_terms`) is then entered at few places (the regex engine finds no first
    character of such a pattern itself). The pattern itself when `first_chars` derives no set."""
    chars = first_chars(pattern)
    if chars is None:
        return pattern
    try:
        return re.compile(f"(?=[{re.escape(''.join(sorted(chars)))}])(?:{pattern.pattern})", pattern.flags)
    except re.error:  # e.g. global inline flags, which must open a pattern
        return pattern


def _starts(items: list[tuple[Any, Any]]) -> tuple[set[str] | None, bool]:
    """(chars, empty) of a sequence of parse nodes: the characters a match of it can start with (None:
    no small set), and whether it can match the empty string."""
    found: set[str] = set()
    for op, arg in items:
        chars, empty = _node_starts(op, arg)
        if chars is None:
            return None, False
        found |= chars
        if not empty:
            return found, False
    return found, True


def _node_starts(op: Any, arg: Any) -> tuple[set[str] | None, bool]:
    """(chars, empty) of one parse node (see `_starts`)."""
    if op is _sre.LITERAL:
        return {chr(arg)}, False
    if op is _sre.IN:  # a class of characters and small ranges ("[a-z]"); a category or a negation: no set
        chars: set[str] = set()
        for o, a in arg:
            if o is _sre.LITERAL:
                chars.add(chr(a))
            elif o is _sre.RANGE and a[1] - a[0] < 128:
                chars.update(map(chr, range(a[0], a[1] + 1)))
            else:
                return None, False
        return chars, False
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return set(), True  # takes no character: the next node's is the first
    if op is _sre.SUBPATTERN:
        return _starts(list(arg[-1]))
    if op is _sre.ATOMIC_GROUP:
        return _starts(list(arg))
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        low, _, body = arg
        chars, empty = _starts(list(body))
        return (chars, empty or low == 0) if chars is not None else (None, False)
    if op is _sre.BRANCH:
        chars = set()
        any_empty = False
        for branch in arg[1]:
            branch_chars, empty = _starts(list(branch))
            if branch_chars is None:
                return None, False
            chars |= branch_chars
            any_empty = any_empty or empty
        return chars, any_empty
    return None, False  # any character, a category, a back-reference: no small set


def _needs(items: list[tuple[Any, Any]]) -> tuple[set[str] | None, list[frozenset[str]]]:
    """(exact, clauses) of a sequence of parse nodes: `exact` the lower-case strings a match can be
    (None when not a small set), `clauses` sets of words of which every match contains one each."""
    exact: set[str] | None = {""}  # the strings the current run of nodes can be
    whole = True  # no node cut the run: `exact` is what the whole sequence can be
    clauses: list[frozenset[str]] = []
    for op, arg in items:
        node_exact, node_clauses = _node_needs(op, arg)
        clauses.extend(node_clauses)
        if exact is not None and node_exact is not None and len(exact) * len(node_exact) <= _EXACT_LIMIT:
            exact = {a + b for a in exact for b in node_exact}
            continue
        if exact is not None:
            clauses.append(frozenset(exact))  # every match holds the run so far as one of these strings
        exact = node_exact  # a new run starts after a node that is not one small set of strings
        whole = False
    if exact is not None:
        clauses.append(frozenset(exact))
    return (exact if whole else None), _minimal(clauses)


def _node_needs(op: Any, arg: Any) -> tuple[set[str] | None, list[frozenset[str]]]:
    """(exact, clauses) of one parse node (see `_needs`)."""
    if op is _sre.LITERAL:
        char = chr(arg)
        return ({char.lower()}, []) if _plain(char) else (None, [])
    if op is _sre.IN:  # a class of a few plain characters: "[ctls]", "[üu]" (anything else: no words)
        chars = [chr(a) for o, a in arg if o is _sre.LITERAL]
        if len(chars) == len(arg) and len(chars) <= 8 and all(_plain(c) for c in chars):
            return {c.lower() for c in chars}, []
        return None, []
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return {""}, []  # takes no characters: the strings on either side are still adjacent
    if op is _sre.SUBPATTERN:
        return _needs(list(arg[-1]))
    if op is _sre.ATOMIC_GROUP:
        return _needs(list(arg))
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        low, high, body = arg
        body_exact, body_clauses = _needs(list(body))
        if low == high == 1:
            return body_exact, body_clauses
        if low == 0:  # "x?" is "" or x; any longer optional repeat needs nothing
            return ({"", *body_exact} if high == 1 and body_exact is not None else None), []
        return None, body_clauses + ([frozenset(body_exact)] if body_exact is not None else [])
    if op is _sre.BRANCH:
        branches = [_needs(list(b)) for b in arg[1]]
        if all(e is not None for e, _ in branches):
            union = set().union(*(e for e, _ in branches))  # type: ignore[misc]
            if len(union) <= _EXACT_LIMIT:
                return union, []
        # Either branch may match: a set of words joins a needed set of each branch; every such choice
        # is needed while there are few ((a and b) or c: a or c, and b or c), else the most telling.
        needed = [_useful([*c, *([frozenset(e)] if e is not None else [])]) for e, c in branches]
        if any(not n for n in needed):
            return None, []
        if math.prod(len(n) for n in needed) <= _CHOICE_LIMIT:
            joined = _minimal([frozenset().union(*choice) for choice in itertools.product(*needed)])
            return None, sorted(joined, key=_telling, reverse=True)[:_CHOICES_KEPT]  # any of them is needed
        return None, [frozenset().union(*(max(n, key=_telling) for n in needed))]
    return None, []  # any character, a category, a back-reference: no word


def _plain(char: str) -> bool:
    """Whether, in ASCII text, only the character itself lower-cased matches a pattern's character:
    any but those outside ASCII that IGNORECASE matches to an ASCII letter ("ſ", "K": `_FOLDS_TO_ASCII`).
    ASCII text never holds "–" or "ü", and no ASCII character matches them."""
    return char not in _FOLDS_TO_ASCII


def _minimal(clauses: list[frozenset[str]]) -> list[frozenset[str]]:
    """The needed sets that say something: a set holding "" is met by every text, and a set holding
    all the words of another is met whenever that one is."""
    useful = _useful(clauses)
    return [c for c in useful if not any(o < c for o in useful)]


def _useful(clauses: list[frozenset[str]]) -> list[frozenset[str]]:
    """The needed sets that need a word (a set holding "" is met by every text), each once."""
    return list(dict.fromkeys(c for c in clauses if "" not in c))


def _telling(words: frozenset[str]) -> tuple[int, int]:
    """How telling a needed set is: its shortest word the longer, its words the fewer, the better."""
    return min(map(len, words)), -len(words)


def _shortest(words: Iterable[str]) -> tuple[str, ...]:
    """The words that hold no other of them ("fractur", not also "fracture": a text holding the longer
    holds the shorter), in a fixed order."""
    found = set(words)
    return tuple(sorted(w for w in found if not any(o != w and o in w for o in found)))


class WordGate:
    """Whether a text can hold a match of any of `patterns`, by substring tests of the words each
    pattern needs (`required_words`); every text passes when a pattern needs no word."""

    __slots__ = ("_any", "_needs")

    def __init__(self, patterns: Iterable[re.Pattern[str]]) -> None:
        needs = [required_words(p) for p in patterns]
        self._needs: tuple[tuple[tuple[str, ...], ...], ...] | None = None
        self._any: tuple[str, ...] = ()
        if needs and all(n is not None for n in needs):
            self._needs = tuple(tuple(_shortest(c) for c in n) for n in needs)  # type: ignore[union-attr]
            # One needed set of each pattern joined: a text holding none of these words holds no match,
            # known in one sweep (most texts), before the sets are tested pattern by pattern. Each
            # pattern adds the set that adds the fewest new words (so "%" serves every percentage).
            chosen: set[str] = set()
            for n in sorted(self._needs, key=len):
                chosen.update(min(n, key=lambda c: (len(set(c) - chosen), -min(map(len, c)))))
            self._any = _shortest(chosen)

    @property
    def complete(self) -> bool:
        """Whether every pattern needs words (else the gate passes every text)."""
        return self._needs is not None

    def may_match(self, low: str | None, pos: int = 0, endpos: int = sys.maxsize) -> bool:
        """False only when no pattern can match in text[pos:endpos]; `low` is `ascii_lower(text)`
        (None for a text that is not ASCII: it passes)."""
        needs = self._needs
        if low is None or needs is None:
            return True
        part = low if pos == 0 and endpos >= len(low) else low[pos:endpos]
        holds = part.__contains__
        if not any(map(holds, self._any)):
            return False
        for clauses in needs:
            for words in clauses:
                if not any(map(holds, words)):
                    break  # no word of this set: this pattern cannot match
            else:
                return True  # every set met: this pattern may match
        return False


# One vertebra: "T12", "Th12", "T-12", "T 12", "L1", "C7", "S1". The region letter must not be the
# tail of a word ("at12" is not a level), and the number must not run on ("T123", "L1.5").
_ONE = r"(?<![A-Za-z0-9])(?P<region{n}>th|[ctls])[\s\-]?(?P<num{n}>1[0-2]|[1-9])(?![0-9.]?\d)"
_LEVEL = re.compile(_ONE.format(n=""), re.IGNORECASE)
# A range: "T11-L1", "T11 to L1", "T11 through L1", "T11–L1"; a bare second number shares the
# first's region ("T11-12", "L2-4").
_RANGE = re.compile(
    _ONE.format(n="a")
    + r"\s*(?:-|–|—|to|through|thru)\s*"
    + r"(?:(?P<regionb>th|[ctls])[\s\-]?)?(?P<numb>1[0-2]|[1-9])(?![0-9.]?\d)",
    re.IGNORECASE,
)
# Two adjacent levels joined by "-", "–" or "/" ("L4-L5", "L4-5", "L5-S1", "T12/L1") name the disc
# between them when disc words sit beside them: "L4-L5 disc", "L5-S1 interspace", "the L4-5 level"
# (singular: "the L1-L2 levels" are vertebrae), "disc bulge at L4-5". Such a pair is no vertebra
# (input profile, rule 6: never invent a level). A wider range ("T11-L1") always names vertebrae.
_PAIR = re.compile(
    _ONE.format(n="a")
    + r"\s*(?:-|–|—|/)\s*"
    + r"(?:(?P<regionb>th|[ctls])[\s\-]?)?(?P<numb>1[0-2]|[1-9])(?![0-9.]?\d)",
    re.IGNORECASE,
)
_DISC_AFTER = re.compile(
    r"\s*(?::\s*(?:[a-z]+\s+){0,2})?(?:intervertebral\s+)?(?:dis[ck]s?\b|interspaces?\b|level\b(?!s)"
    r"|(?:disc\s+)?space\b)",
    re.IGNORECASE,
)
_DISC_BEFORE = re.compile(
    r"\b(?:dis[ck]s?|interspace|herniat\w*|protru\w*|extru\w*|bulg\w*|annul\w*|desiccat\w*|facet\w*)"
    r"(?:[^\S\n]+[^\s.,;:]+){0,3}?[^\S\n]+(?:at|of|involving|in)(?:[^\S\n]+the)?[^\S\n]+$",
    re.IGNORECASE,
)


_DISC_WORD = Caseless(re.compile(
    r"dis[ck]|interspace|level\b|space|herniat|protru|extru|bulg|annul|desiccat|facet", re.IGNORECASE
))
# Every vertebra written as a label ("T12", "L1-2") has a number from 1 to 9 in it.
_NUMBER = re.compile(r"[1-9]")


def _disc_spans(text: str) -> list[tuple[int, int]]:
    """Where the text names an intervertebral disc by the two vertebrae around it."""
    spans = []
    for m in _PAIR.finditer(text):
        first = _label(m["regiona"], m["numa"])
        last = _label(m["regionb"] or m["regiona"], m["numb"])
        if not (is_level(first) and is_level(last)) or abs(position(last) - position(first)) != 1:
            continue
        if _DISC_AFTER.match(text, m.end()) or _DISC_BEFORE.search(text[max(0, m.start() - 60) : m.start()]):
            spans.append(m.span())
    return spans


_SACRUM = re.compile(r"\bsacr(?:um|al)\b", re.IGNORECASE)
_SACRUM_WORD = Caseless(_SACRUM)
# ICD-10-CM and SNOMED CT displays name vertebrae by ordinal: "fracture of first lumbar vertebra",
# "twelfth thoracic vertebra". Only with the word vertebra (or a list ending in it) after the region.
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth")
_REGION_LETTER = {"cervical": "C", "thoracic": "T", "lumbar": "L", "sacral": "S"}
_ORDINAL = re.compile(
    r"\b(?P<ordinal>" + "|".join(_ORDINALS) + r")\s+(?P<region>cervical|thoracic|lumbar|sacral)"
    r"(?=\s+vertebr|\s+and\s+\w+\s+(?:cervical|thoracic|lumbar|sacral)\s+vertebr)",
    re.IGNORECASE,
)
# "T1" and "T2" are also MRI sequences: "T2 hyperintense", "T1-weighted", "T2/STIR" name no vertebra,
# and neither do series descriptions ("SAG T2", "AX T1 post gad", "T2 FS", "T1 TSE SAG"): a plane
# before, or a sequence, fat-suppression or contrast word after, makes it a sequence.
_MRI_SEQUENCE = re.compile(
    r"[\s\-]*(?:weighted|wi?\b|bright\b|hyper|hypo|iso|signal|sequence|images?|imaging|flair|fat|\*|/\s*stir|and\s+stir"
    r"|stir\b|sag(?:ittal)?\b|ax(?:ial)?\b|cor(?:onal)?\b|fse\b|tse\b|frfse\b|fs\b|space\b|tirm\b|dixon\b"
    r"|pre\b|post\b|gad\w*|\+\s*c\b|contrast)",
    re.IGNORECASE,
)
_MRI_PLANE_BEFORE = re.compile(
    r"\b(?:sag(?:ittal)?|ax(?:ial)?|cor(?:onal)?)\.?\s*(?:T[12]\s*(?:and|/|,)\s*)?$", re.IGNORECASE
)


def _is_mri_sequence(text: str, label: str, start: int, end: int) -> bool:
    if label not in {"T1", "T2"}:
        return False
    return bool(_MRI_SEQUENCE.match(text, end) or _MRI_PLANE_BEFORE.search(text[max(0, start - 20) : start]))

def _label(region: str, number: str) -> str:
    letter = "T" if region.lower() == "th" else region.upper()
    return f"{letter}{int(number)}"


def _inside(spans: list[tuple[int, int]]) -> Callable[[int], bool]:
    """A test "does a position fall inside one of these spans", in log time (a long text names
    thousands of levels: a scan of every span for every mention is quadratic)."""
    ordered = sorted(spans)
    starts = [a for a, _ in ordered]
    reach: list[int] = []  # reach[i]: the furthest end among the first i + 1 spans
    for _, b in ordered:
        reach.append(max(b, reach[-1]) if reach else b)

    def check(pos: int) -> bool:
        i = bisect.bisect_right(starts, pos)
        return i > 0 and reach[i - 1] > pos

    return check


def level_mentions(text: str | None) -> list[tuple[int, int, list[str]]]:
    """Each place the text names levels, in reading order: (start, end, levels).

    Mentions joined only by commas, "and", "or", "&" or "/" form one group ("T12, L1 and L2" is one
    mention of three levels), so that a finding written after a list belongs to the whole list.
    """
    if not text:
        return []
    spans: list[tuple[int, int, list[str]]] = []
    # Most texts name no level at all: a text without a number has no label, one without "sacr" no sacrum.
    low = ascii_lower(text)
    consumed = _labels(text, spans, low) if _NUMBER.search(text) else []
    if "vertebr" in text.lower() and _ORDINAL_WORDS.may_match(low):
        for m in _ORDINAL.finditer(text):
            # casefold, not lower: IGNORECASE lets "ſ" match "s" ("ſecond ſacral"), and lower keeps it
            label = f"{_REGION_LETTER[m['region'].casefold()]}{_ORDINALS.index(m['ordinal'].casefold()) + 1}"
            if is_level(label):
                spans.append((m.start(), m.end(), [label]))
                consumed.append(m.span())
    if _SACRUM_WORD.found(text, low=low):
        inside = _inside(consumed)
        for m in _SACRUM.finditer(text):
            if not inside(m.start()):  # "second sacral vertebra" is S2, not the sacrum
                spans.append((m.start(), m.end(), [SACRUM]))
    spans.sort()
    groups: list[tuple[int, int, list[str]]] = []
    for start, end, levels in spans:
        if groups and _LIST_JOIN.fullmatch(text, groups[-1][1], start):
            g_start, _, g_levels = groups[-1]
            groups[-1] = (g_start, end, sort_levels([*g_levels, *levels]))
        else:
            groups.append((start, end, sort_levels(levels)))
    return groups


def _labels(text: str, spans: list[tuple[int, int, list[str]]], low: str | None) -> list[tuple[int, int]]:
    """The levels written as labels ("T12", "T11-L1"), added to `spans`; the places they (and disc
    spaces) take, which no other mention may start in. `low`: `ascii_lower(text)`."""
    consumed: list[tuple[int, int]] = _disc_spans(text) if _DISC_WORD.found(text, low=low) else []
    # A range found here can never contain a later range (matches do not overlap): one index serves the loop.
    inside = _inside(consumed)
    # Most texts join no two labels ("-", "to", "through"): the range search is skipped (`WordGate`).
    for m in _RANGE.finditer(text) if _RANGE_WORDS.may_match(low) else ():
        if inside(m.start()):
            continue
        first = _label(m["regiona"], m["numa"])
        last = _label(m["regionb"] or m["regiona"], m["numb"])
        if is_level(first) and is_level(last):
            spans.append((m.start(), m.end(), level_range(first, last)))
            consumed.append(m.span())
    inside = _inside(consumed)
    for m in _LEVEL.finditer(text):
        if inside(m.start()):
            continue
        label = _label(m["region"], m["num"])
        if is_level(label) and not _is_mri_sequence(text, label, m.start(), m.end()):
            spans.append((m.start(), m.end(), [label]))
    return consumed


_RANGE_WORDS = WordGate([_RANGE])  # the words a range needs, and an ordinal name
_ORDINAL_WORDS = WordGate([_ORDINAL])

_LIST_JOIN = re.compile(r"\s*(?:,|&|/|\band\b|\bor\b)?\s*(?:\band\b)?\s*", re.IGNORECASE)


def find_levels(text: str | None) -> list[str]:
    """Every vertebral level the text names, head to foot ("T11-L1" → T11, T12, L1).

    Unknown labels (e.g. "T13", "C8") are dropped rather than guessed; "sacrum" is reported as S1 so
    that a sacral fracture fails the level rule instead of vanishing. A short text's levels are
    remembered (`_short_levels`); the list is the caller's own either way.
    """
    if text and len(text) <= SHORT_TEXT:
        return list(_short_levels(text))
    return _read_levels(text)


# Texts of at most this many characters have their levels remembered: a series description ("SAG T1",
# "AX T2"), a body site's display, a Condition's display recur on every call about a patient and across
# patients, and their levels depend on the text alone (~10 µs a reading of "SAG T1", its MRI-sequence
# checks). Bounded as the other short-text memories (`TermFilter.LIMIT`). tests/test_text.py holds the
# remembered answer to `_read_levels` on every text of every bundle and on generated texts.
SHORT_TEXT = 200


@functools.lru_cache(maxsize=10_000)
def _short_levels(text: str) -> tuple[str, ...]:
    return tuple(_read_levels(text))


def _read_levels(text: str | None) -> list[str]:
    """`find_levels` read afresh."""
    return sort_levels(label for _, _, labels in level_mentions(text) for label in labels)


_PERCENT = re.compile(
    r"(?P<value>\d{1,3}(?:\.\d+)?)\s*(?:%|percent|per\s*cent)", re.IGNORECASE
)
# Every percentage `height_loss_percents` reports is a match of these (a caller's `WordGate` is made of them).
PERCENT_PATTERNS = (_PERCENT,)
_HEIGHT_CONTEXT = re.compile(r"height|collapse|compress|loss|wedg|reduc", re.IGNORECASE)
# A range ("25-30%", "20%-30%", "30 to 40 percent") supports only its lower bound.
_RANGE_LOW = re.compile(r"(?P<low>\d{1,3}(?:\.\d+)?)\s*(?:%|percent)?\s*(?:-|–|—|to)\s*$", re.IGNORECASE)
_RANGE_HIGH_AFTER = re.compile(r"^\s*(?:-|–|—|to)\s*\d", re.IGNORECASE)
_FROM_BEFORE = re.compile(r"\bfrom\s+(?:\d{1,3}(?:\.\d+)?\s*(?:%|percent)?\s*(?:-|–|—|to)\s*)?$", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _height_words(sentence: str) -> bool:
    """Whether a sentence has height-loss wording. Cached: every part of a long sentence asks again."""
    return bool(_HEIGHT_CONTEXT.search(sentence))


def height_loss_percents(text: str | None, *, context: str | None = None) -> list[tuple[float, int, int]]:
    """(value, start, end) of each percentage stated as height loss: "35% height loss", "loss of 40% of
    height", "40 percent collapse". What the text asserts of it (negated, hedged) is the assertion
    reader's to say, at (start, end).

    A percentage counts only with height-loss wording within the same clause, so "90% oxygen
    saturation" or "T-score at 5th percentile" never becomes a height loss. `context` is the sentence a
    part of it ("T12 30%" of "T12 30%, L1 20% height loss") comes from: its wording counts too.
    """
    if not text:
        return []
    values: list[tuple[float, int, int]] = []
    in_context = context is not None and _height_words(context)
    worded_clauses: dict[tuple[int, int], bool] = {}  # one search per clause, not per percentage
    for m in _PERCENT.finditer(text):
        clause_start = max(text.rfind(sep, 0, m.start()) for sep in ".;\n")
        clause_end = min((i for i in (text.find(sep, m.end()) for sep in ".;\n") if i != -1), default=len(text))
        key = (clause_start, clause_end)
        if key not in worded_clauses:
            worded_clauses[key] = bool(_HEIGHT_CONTEXT.search(text, clause_start + 1, clause_end))
        value = float(m["value"])
        # "from 20% to 35%" is a change (two measurements), not a range.
        change = _FROM_BEFORE.search(text[max(0, m.start() - 30) : m.start()])
        if not change and _RANGE_HIGH_AFTER.match(text[m.end() : m.end() + 8]):
            continue  # the "20%" of "20%-30%": the range is read once, at its upper end, as its lower bound
        low = None if change else _RANGE_LOW.search(text[max(0, m.start() - 16) : m.start()])
        if low is not None:
            value = min(value, float(low["low"]))
        worded = worded_clauses[key] or in_context
        if worded and 0 <= value <= 100:
            values.append((value, m.start(), m.end()))
    return values


def find_score(text: str | None, labels: Iterable[str], maximum: int) -> list[int]:
    """Scores written after a label: "RDQ 19", "Roland-Morris 19/24", "NRS: 8/10", "pain 7 out of 10".

    A number above `maximum`, or a fraction whose denominator is not `maximum`, is not a score.
    """
    if not text:
        return []
    label = "|".join(labels)
    pattern = re.compile(
        rf"\b(?:{label})\b[^0-9\n]{{0,25}}?(?P<value>\d{{1,3}})(?:\s*(?:/|out\s+of|of)\s*(?P<den>\d{{1,3}}))?",
        re.IGNORECASE,
    )
    scores = []
    for m in pattern.finditer(text):
        value = int(m["value"])
        if m["den"] is not None and int(m["den"]) != maximum:
            continue
        if value <= maximum:
            scores.append(value)
    return scores
