"""The assertion triggers as data: `assertion-triggers.yaml` loaded, checked and compiled once.

A clinical informaticist extends the reader by adding a phrase to the YAML file, not by editing
code (issue 8; the brief's model is medspaCy's ConText rule file). This module turns that file into
what the reader needs at run time:

- one pattern for every phrase, compiled as a character trie, so that the text is scanned once
  whatever the number of phrases or families, and at each position the longest phrase wins
  ("no change in" before "no");
- one pattern for every `regex` entry (scanned once too; a regex wins over a phrase that starts at the
  same position and is not longer);
- the section headers, compiled into one pattern.

Any mistake in the file (an unknown category, a bad regex, a phrase given two meanings) is a
`ConfigError` that names the family and the trigger, so the author sees what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fhir_vcf.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("assertion-triggers.yaml")
# libyaml's safe loader when PyYAML was built with it (20 times faster at import), else the pure one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The statuses a mention can take (input profile, "Reading report text").
AFFIRMED = "affirmed"
NEGATED = "negated"
POSSIBLE = "possible"
HISTORICAL = "historical"
RESOLVED = "resolved"
HYPOTHETICAL = "hypothetical"
OTHER_PERSON = "other-person"
STATUSES = (AFFIRMED, NEGATED, POSSIBLE, HISTORICAL, RESOLVED, HYPOTHETICAL, OTHER_PERSON)

# Trigger categories: a status, or one of the three that set no status themselves.
PSEUDO = "pseudo"
TERMINATION = "termination"
ELSEWHERE = "elsewhere"
STATUS_CATEGORIES = (NEGATED, POSSIBLE, HISTORICAL, RESOLVED, HYPOTHETICAL, OTHER_PERSON)
CATEGORIES = (*STATUS_CATEGORIES, PSEUDO, TERMINATION, ELSEWHERE)
DIRECTIONS = ("forward", "backward", "bidirectional")

# Section kinds (input profile: INDICATION / CLINICAL HISTORY / REASON FOR EXAM / COMPARISON state
# the question or the past; FINDINGS / IMPRESSION / CONCLUSION are this study).
SECTION_KINDS = ("question", "history", "comparison", "family", "study")

UNLIMITED = 1 << 30  # a scope without a word window: it runs to the end of its sentence

_FAMILY_KEYS = {"family", "category", "direction", "window", "of", "ends", "elsewhere", "question", "cite", "triggers"}
_TRIGGER_KEYS = {"phrase", "regex", "window", "direction", "elsewhere"}
_SECTION_KEYS = {"kind", "cite", "headers"}


@dataclass(frozen=True)
class TriggerRule:
    """One trigger phrase (or regex) and what it does.

    `forward` / `backward` are the word windows of its scope in each direction (`UNLIMITED`: to the
    sentence's edge; None: no scope that way). A pseudo-trigger imitates the category `of`; a
    termination stops the scopes of the categories in `ends` (all when empty). `elsewhere`: a
    negation about other places than those the text names ("no other"); `question`: a hypothetical
    asking what a later statement of the sentence may answer ("testing for X is negative").
    """

    phrase: str
    family: str
    category: str
    cite: str
    forward: int | None = None
    backward: int | None = None
    of: str | None = None
    ends: frozenset[str] = frozenset()
    elsewhere: bool = False
    question: bool = False

    @property
    def direction(self) -> str:
        if self.forward is not None and self.backward is not None:
            return "bidirectional"
        return "forward" if self.forward is not None else "backward" if self.backward is not None else "none"

    @property
    def effect(self) -> str:
        """The category whose scope this trigger takes part in (a pseudo-trigger's imitated one)."""
        return (self.of or NEGATED) if self.category == PSEUDO else self.category


@dataclass(frozen=True)
class SectionRule:
    kind: str
    cite: str


_END = ""  # the key of a word-trie node that ends a phrase (no token is empty)


@dataclass(eq=False)
class TriggerSet:
    """The compiled rules.

    Phrases live in a word trie (`trie`: token → children, `_END` → rule); `first` is one pattern
    matching the first token of any phrase, so a text is scanned once in C for the places where a
    trigger can start, and the trie is walked only there. Regex entries, if any, share one pattern.
    """

    first: re.Pattern[str]
    trie: dict[str, Any]
    regexes: re.Pattern[str] | None
    by_phrase: dict[str, TriggerRule]
    by_group: dict[str, TriggerRule]
    sections: dict[str, SectionRule]
    source: str = ""

    @property
    def count(self) -> int:
        return len(self.by_phrase) + len(self.by_group)

    def find(self, folded: str, pos: int, endpos: int) -> list[tuple[int, int, TriggerRule]]:
        """Every trigger in folded[pos:endpos] (`folded` = `fold(text)`), leftmost first; where two
        overlap, the longer is kept (a regex on equal length)."""
        found: list[tuple[int, int, TriggerRule]] = []
        reach = pos
        trie, step = self.trie, _NEXT.match
        for m in self.first.finditer(folded, pos, endpos):
            start = m.start()
            if start < reach:
                continue
            token = m.group()
            node = trie.get("#" if token[0].isdigit() else token)
            best: tuple[int, TriggerRule] | None = None
            end = m.end()
            while node is not None:
                rule = node.get(_END)
                if rule is not None:
                    best = (end, rule)
                    if len(node) == 1:
                        break  # nothing longer starts this way
                n = step(folded, end, endpos)
                if n is None:
                    break
                token = n.group(1)
                node = node.get("#" if token[0].isdigit() else token)
                end = n.end()
            if best is not None:
                found.append((start, best[0], best[1]))
                reach = best[0]
        if self.regexes is None:
            return found
        extra = [(m.start(), m.end(), self.by_group[m.lastgroup or ""])
                 for m in self.regexes.finditer(folded, pos, endpos)]
        if not extra:
            return found
        ranked = sorted([(a, -b, 1, r) for a, b, r in found] + [(a, -b, 0, r) for a, b, r in extra],
                        key=lambda t: t[:3])
        kept: list[tuple[int, int, TriggerRule]] = []
        reach = pos
        for a, neg_b, _, rule in ranked:
            if a >= reach:
                kept.append((a, -neg_b, rule))
                reach = -neg_b
        return kept


# A token: a number, a word (with inner apostrophes: "don't", "patient's"), or one punctuation mark.
# Hyphens separate words like spaces ("x-ray" = "x ray", "10-year-old" = "# year old").
_TOKEN = re.compile(r"\d+(?:\.\d+)?|\w+(?:'\w+)*|[^\w\s\-]")
_NEXT = re.compile(r"[\s\-]*(\d+(?:\.\d+)?|\w+(?:'\w+)*|[^\w\s\-])")


def fold(text: str) -> str:
    """The text as phrases are matched against it: lower case, one kind of apostrophe, and every
    offset unchanged (a character whose lower case is longer, e.g. "İ", is kept as it is)."""
    folded = text.lower()
    if len(folded) != len(text):
        folded = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return folded.replace("’", "'") if "’" in folded else folded


def tokens(phrase: str) -> list[str]:
    """The tokens of a phrase, numbers as "#"."""
    return ["#" if t[0].isdigit() else t for t in _TOKEN.findall(fold(phrase))]


def normalize(phrase: str) -> str:
    """The lookup key of a phrase (and of a section header): its tokens joined by one space."""
    return " ".join(tokens(phrase))


# Irregular verbs among the literature's triggers; the rest inflect regularly.
_IRREGULAR = {
    "see": ("see", "sees", "saw", "seen", "seeing"),
    "show": ("show", "shows", "showed", "shown", "showing"),
    "find": ("find", "finds", "found", "finding"),
    "rule": ("rule", "rules", "ruled", "ruling"),
}
_MAX_FORMS = 5000  # expansions of one written phrase: beyond this, the phrase is probably a mistake


def inflections(verb: str) -> tuple[str, ...]:
    """Every form of a verb a trigger should match: deny → deny, denies, denied, denying.

    Regular English rules only (plus a few irregular verbs); no consonant doubling ("stop" →
    "stopped" must be written out), which none of the literature's trigger verbs needs.
    """
    if verb in _IRREGULAR:
        return _IRREGULAR[verb]
    if verb.endswith("e"):
        return verb, verb + "s", verb + "d", verb[:-1] + "ing"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in "aeiou":
        return verb, verb[:-1] + "ies", verb[:-1] + "ied", verb + "ing"
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        return verb, verb + "es", verb + "ed", verb + "ing"
    return verb, verb + "s", verb + "ed", verb + "ing"


_PART = re.compile(r"\([^()\[\]]*\)|\[[^()\[\]]*\]|[^\s()\[\]]+")


def expand(phrase: str) -> list[str]:
    """The phrases a written phrase stands for. "(a|b)" is one of the alternatives, "[a|b]" one of them
    or nothing, and a word ending in "~" any inflection of that verb:
    "[was|were] not (seen|present)" → "not seen", "was not seen", ..., "were not present"."""
    if _PART.sub("", phrase).strip():
        raise ValueError("unbalanced or nested ( ) / [ ]: write (a|b) for alternatives, [a|b] for optional words")
    forms = [""]
    for part in _PART.findall(phrase):
        if part[0] in "([":
            options = [" ".join(o.split()) for o in part[1:-1].split("|")]
            if not all(options):
                raise ValueError(f"empty alternative in {part!r}")
            if part[0] == "[":
                options.append("")
        else:
            options = [part]
        inflected = []
        for option in options:
            words = [inflections(w[:-1]) if w.endswith("~") and len(w) > 1 else (w,) for w in option.split()]
            combos = [""]
            for choices in words:
                combos = [f"{c} {w}".strip() for c in combos for w in choices]
            inflected.extend(combos)
        forms = [f"{f} {o}".strip() for f in forms for o in inflected]
        if len(forms) > _MAX_FORMS:
            raise ValueError(f"expands to more than {_MAX_FORMS} phrases")
    return [f for f in forms if f]


# --- the first-token pattern ---
# One alternation of every phrase's first token, built as a character trie so that each branch starts
# with a plain character the regular-expression engine tests before entering it, and matched against
# folded (lower-cased) text without IGNORECASE: about ten times faster than a case-insensitive
# alternation, measured on the NegEx set.


class _Node:
    __slots__ = ("children", "terminal")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.terminal = False


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _emit(node: _Node, last: str) -> str:
    alternatives = [re.escape(ch) + _emit(child, ch) for ch, child in sorted(node.children.items())]
    if node.terminal:
        # a word token ends where the word ends ("no" is not the start of "node" or of "no's")
        alternatives.append(r"(?!\w|'\w)" if _is_word(last) else "")
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


def compile_first_tokens(first: Iterable[str]) -> re.Pattern[str]:
    """One pattern matching any of the tokens where a token starts in folded text ("#": a number).

    Word tokens sit behind one word-boundary check, which fails fast inside words, so the
    alternation runs only where a word starts or ends (twice as fast as a check per branch).
    """
    root = _Node()
    punctuation: set[str] = set()
    number = False
    for token in first:
        if token == "#":
            number = True
        elif not _is_word(token[0]):
            punctuation.add(token)
        else:
            node = root
            for ch in token:
                node = node.children.setdefault(ch, _Node())
            node.terminal = True
    words = [re.escape(ch) + _emit(child, ch) for ch, child in sorted(root.children.items())]
    if number:
        words.append(r"\d+(?:\.\d+)?(?!\w)")
    branches = [r"\b(?:" + "|".join(words) + ")"] if words else []
    branches.extend(re.escape(p) for p in sorted(punctuation, key=len, reverse=True))
    return re.compile("|".join(branches) or r"(?!)")


def _trie(by_phrase: Mapping[str, TriggerRule]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, rule in by_phrase.items():
        node = root
        for token in key.split(" "):
            node = node.setdefault(token, {})
        node[_END] = rule
    return root


# --- loading ---


def _fail(source: str, where: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {where}: {message}")


def _window(value: Any, source: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(source, where, f"window must be a whole number of words (0 or more), not {value!r}")
    return value


def _scope(direction: Any, window: int | None, source: str, where: str) -> tuple[int | None, int | None]:
    if direction not in DIRECTIONS:
        raise _fail(source, where, f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    reach = UNLIMITED if window is None else window
    return (reach if direction in ("forward", "bidirectional") else None,
            reach if direction in ("backward", "bidirectional") else None)


def _merge(old: TriggerRule, new: TriggerRule, source: str, where: str) -> TriggerRule:
    """The same phrase listed twice with one meaning (e.g. "unlikely" forward and backward): one rule
    whose scope is the union. Two meanings cannot be told apart at run time: an error."""
    if (old.category, old.of, old.ends, old.elsewhere, old.question) != (
            new.category, new.of, new.ends, new.elsewhere, new.question):
        raise _fail(source, where, f"{new.phrase!r} is already a {old.category} trigger of family "
                                   f"{old.family!r}; a phrase can have only one meaning")

    def union(a: int | None, b: int | None) -> int | None:
        return b if a is None else a if b is None else max(a, b)

    return TriggerRule(old.phrase, old.family, old.category, old.cite, union(old.forward, new.forward),
                       union(old.backward, new.backward), old.of, old.ends, old.elsewhere, old.question)


def load_triggers(path: str | Path = DEFAULT_PATH) -> TriggerSet:
    """Read, check and compile a trigger file. Raises `ConfigError` naming the entry at fault."""
    source = Path(path).name
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the trigger file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML: {at}{getattr(exc, 'problem', None) or exc}") from None
    return compile_triggers(data, source=source)


def compile_triggers(data: Any, *, source: str = "triggers") -> TriggerSet:
    """Check and compile trigger data already parsed from YAML (a mapping with `families`)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("families"), list):
        raise ConfigError(f"{source}: expected a mapping with a 'families' list")
    by_phrase: dict[str, TriggerRule] = {}
    regex_rules: list[tuple[str, TriggerRule]] = []
    for index, family in enumerate(data["families"], start=1):
        for key, rule in _family_rules(family, index, source):
            if key is None:
                regex_rules.append((rule.phrase, rule))
            else:
                where = f"family {rule.family!r}, trigger {rule.phrase!r}"
                by_phrase[key] = _merge(by_phrase[key], rule, source, where) if key in by_phrase else rule
    by_group = {f"r{i}": rule for i, (_, rule) in enumerate(regex_rules)}
    regexes = (
        re.compile("|".join(f"(?P<r{i}>{text})" for i, (text, _) in enumerate(regex_rules)), re.IGNORECASE)
        if regex_rules else None
    )
    sections = _sections(data.get("sections") or [], source)
    first = compile_first_tokens({key.split(" ")[0] for key in by_phrase})
    return TriggerSet(first, _trie(by_phrase), regexes, by_phrase, by_group, sections, source)


def _family_rules(family: Any, index: int, source: str) -> Iterable[tuple[str | None, TriggerRule]]:
    """(lookup key or None for a regex, rule) for each trigger of one family entry."""
    if not isinstance(family, Mapping):
        raise _fail(source, f"family #{index}", "expected a mapping with family, category, triggers")
    name = family.get("family")
    where = f"family {name!r}" if isinstance(name, str) and name else f"family #{index}"
    if not isinstance(name, str) or not name:
        raise _fail(source, where, "'family' (a name) is required")
    unknown = set(family) - _FAMILY_KEYS
    if unknown:
        raise _fail(source, where, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                   f"allowed: {', '.join(sorted(_FAMILY_KEYS))}")
    category = family.get("category")
    if category not in CATEGORIES:
        raise _fail(source, where, f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    cite = family.get("cite")
    if not isinstance(cite, str) or not cite.strip():
        raise _fail(source, where, "'cite' (where the family comes from) is required")
    of = family.get("of")
    if of is not None and (category != PSEUDO or of not in STATUS_CATEGORIES):
        raise _fail(source, where, "'of' is for pseudo families and names a status category "
                                   f"({', '.join(STATUS_CATEGORIES)}), not {of!r}")
    ends = family.get("ends") or []
    if ends and (category != TERMINATION or not isinstance(ends, list) or set(ends) - set(STATUS_CATEGORIES)):
        raise _fail(source, where, "'ends' is for termination families and lists status categories "
                                   f"({', '.join(STATUS_CATEGORIES)}), not {ends!r}")
    elsewhere = family.get("elsewhere", False)
    if not isinstance(elsewhere, bool) or (elsewhere and category != NEGATED):
        raise _fail(source, where, "'elsewhere: true' is for negated families only")
    question = family.get("question", False)
    if not isinstance(question, bool) or (question and category != HYPOTHETICAL):
        raise _fail(source, where, "'question: true' is for hypothetical families only")
    family_window = family.get("window")
    if family_window is not None:
        family_window = _window(family_window, source, where)
    direction = family.get("direction")
    if category == TERMINATION:
        if direction is not None:
            raise _fail(source, where, "a termination family has no direction: it ends scopes that reach it")
    elif direction is None:
        raise _fail(source, where, f"'direction' is required ({', '.join(DIRECTIONS)})")
    triggers = family.get("triggers")
    if not isinstance(triggers, list) or not triggers:
        raise _fail(source, where, "'triggers' must be a non-empty list")
    for number, trigger in enumerate(triggers, start=1):
        at = f"{where}, trigger #{number}"
        phrase, regex, window, trig_direction, trig_elsewhere = _trigger(trigger, at, source)
        if trig_elsewhere and category != NEGATED:
            raise _fail(source, at, "'elsewhere: true' is for negated triggers only")
        window = family_window if window is None else window
        forward, backward = (None, None) if category == TERMINATION else _scope(
            trig_direction or direction, window, source, at)
        base = TriggerRule(phrase or regex or "", name, category, cite.strip(), forward, backward, of,
                           frozenset(ends), elsewhere or trig_elsewhere, question)
        if regex is not None:
            try:
                compiled = re.compile(regex, re.IGNORECASE)
            except re.error as exc:
                raise _fail(source, f"{at} ({regex!r})", f"bad regex: {exc}") from None
            if compiled.groups:
                raise _fail(source, f"{at} ({regex!r})", "use (?:...) groups only: capturing groups are reserved")
            if compiled.match(""):
                raise _fail(source, f"{at} ({regex!r})", "the regex matches the empty string")
            yield None, base
            continue
        assert phrase is not None
        if re.search(r"~(?=[^\s|)\]])|(?:^|[\s(\[|])~", phrase):
            raise _fail(source, f"{at} ({phrase!r})", "'~' marks the end of a verb: write 'deny~', not 'de~ny'")
        if re.search(r"\d", phrase):
            raise _fail(source, f"{at} ({phrase!r})", "write '#' for a number, not digits")
        try:
            forms = expand(phrase)
        except ValueError as exc:
            raise _fail(source, f"{at} ({phrase!r})", str(exc)) from None
        for form in forms:
            key = normalize(form)
            if not key:
                raise _fail(source, f"{at} ({phrase!r})", "the phrase has no words")
            yield key, TriggerRule(form, *_rest(base))


def _rest(rule: TriggerRule) -> tuple[Any, ...]:
    return (rule.family, rule.category, rule.cite, rule.forward, rule.backward, rule.of, rule.ends, rule.elsewhere,
            rule.question)


def _trigger(trigger: Any, at: str, source: str) -> tuple[str | None, str | None, int | None, str | None, bool]:
    """(phrase, regex, window, direction, elsewhere) of one trigger item."""
    if isinstance(trigger, str):
        trigger = {"phrase": trigger}
    if not isinstance(trigger, Mapping):
        hint = " (quote it: YAML reads no/yes/on/off as booleans)" if isinstance(trigger, bool) else ""
        raise _fail(source, at, f"a trigger is a phrase or a mapping with phrase/regex, not {trigger!r}{hint}")
    unknown = set(trigger) - _TRIGGER_KEYS
    if unknown:
        raise _fail(source, at, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                f"allowed: {', '.join(sorted(_TRIGGER_KEYS))}")
    phrase, regex = trigger.get("phrase"), trigger.get("regex")
    if (phrase is None) == (regex is None):
        raise _fail(source, at, "give exactly one of 'phrase' or 'regex'")
    for value, key in ((phrase, "phrase"), (regex, "regex")):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            hint = " (quote it: YAML reads no/yes/on/off as booleans)" if isinstance(value, bool) else ""
            raise _fail(source, at, f"'{key}' must be non-empty text, not {value!r}{hint}")
    window = trigger.get("window")
    if window is not None:
        window = _window(window, source, at)
    direction = trigger.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise _fail(source, at, f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    elsewhere = trigger.get("elsewhere", False)
    if not isinstance(elsewhere, bool):
        raise _fail(source, at, f"'elsewhere' must be true or false, not {elsewhere!r}")
    return (phrase.strip() if phrase else None), regex, window, direction, elsewhere


def _sections(entries: Any, source: str) -> dict[str, SectionRule]:
    """Each section header's kind (looked up by `normalize`d header text)."""
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'sections' must be a list")
    sections: dict[str, SectionRule] = {}
    for index, entry in enumerate(entries, start=1):
        where = f"section #{index}"
        if not isinstance(entry, Mapping) or set(entry) - _SECTION_KEYS:
            raise _fail(source, where, f"expected a mapping with {', '.join(sorted(_SECTION_KEYS))}")
        kind = entry.get("kind")
        if kind not in SECTION_KINDS:
            raise _fail(source, where, f"unknown kind {kind!r}; expected one of {', '.join(SECTION_KINDS)}")
        cite = entry.get("cite")
        if not isinstance(cite, str) or not cite.strip():
            raise _fail(source, where, "'cite' is required")
        headers = entry.get("headers")
        if not isinstance(headers, list) or not all(isinstance(h, str) and h.strip() for h in headers):
            raise _fail(source, where, "'headers' must be a list of header names")
        for header in headers:
            key = normalize(header)
            if key in sections and sections[key].kind != kind:
                raise _fail(source, where, f"header {header!r} is already a {sections[key].kind} section")
            sections[key] = SectionRule(kind, cite.strip())
    return sections
