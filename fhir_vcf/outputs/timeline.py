"""The episode as a picture: an inline SVG timeline drawn from the evaluation object's `timeline`.

Where people would rather look than read: the fracture onset, the acute and subacute windows of
the policy shaded behind everything, the as-of date, pain scores over time against the policy's
thresholds, imaging, augmentation orders, treatments and bone-health steps, each on its own lane.

Drawn from the public evaluation dict only (never from facts or FHIR), so a page rendered today
from a stored evaluation shows exactly what was decided then. Plain SVG 1.1 markup with no script
and no external reference: it works offline, prints, and passes a strict Content-Security-Policy.
Every mark has a `<title>` (a tooltip in browsers), and the whole figure a `<desc>` that says the
same in words, for screen readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape

WIDTH = 960
LEFT = 118  # lane labels
RIGHT = 24
PLOT = WIDTH - LEFT - RIGHT
PAIN_TOP, PAIN_BOTTOM = 44, 132  # the pain chart: 10 at the top, 0 at the bottom
LANES = (("imaging", "Imaging", 160), ("orders", "Orders", 190), ("treatments", "Treatment", 220),
         ("boneHealth", "Bone health", 250))
AXIS_Y = 272
HEIGHT = 312
MERGE_PX = 14  # marks of one lane closer than this merge into one
_SHORT_DATES = 1024  # axis dates remembered: about three years of Mondays, firsts of months and as-of days
_PAIN_YS = 256  # pain heights remembered: the scores' values and the policies' thresholds
EARLIER_DAYS = 60  # events more than this before the onset are summarised, not drawn (a 2019 MRI)
SETTING_WORDS = {"hospitalized": "hospitalized", "ambulatory": "outpatient", "observation": "observation stay",
                 "unknown": "setting unknown"}

# Colours: text on the light window fills keeps WCAG AA (4.5:1); marks keep 3:1 against white
# (WCAG 1.4.11). tests/test_page.py checks these ratios.
COLORS = {
    "text": "#1a1a1a",
    "muted": "#4d4d4d",
    "acute": "#e3f2e6",
    "subacute": "#fdf0cf",
    "chronic": "#ececec",
    "pain": "#0b57d0",
    "threshold": "#8a4b00",
    "onset": "#a4161a",
    "asof": "#1a1a1a",
    "imaging": "#6a1b9a",
    "orders": "#a4161a",
    "treatments": "#1e6b34",
    "boneHealth": "#7a5200",
    "grid": "#b3b3b3",
}


def _parse(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


class Scale:
    """Days across the plot. Marks share days (scores of one day, a lane's merged events), so a
    day's position is worked out once a picture."""

    __slots__ = ("_xs", "days", "end", "start")

    def __init__(self, start: date, end: date) -> None:
        self.start, self.end = start, end
        self.days = max(1, (end - start).days)
        self._xs: dict[date, float] = {}

    def x(self, day: date) -> float:
        x = self._xs.get(day)
        if x is None:
            x = self._xs[day] = round(LEFT + PLOT * (day - self.start).days / self.days, 1)
        return x


def _dated(timeline: Mapping[str, Any]) -> dict[str, list[tuple[date, Mapping[str, Any]]]]:
    """The pain scores and each lane's events with their day, in the evaluation's order, read once a
    picture (an undated event is listed below the picture, never drawn)."""
    return {key: [(d, e) for e in timeline.get(key) or () if (d := _parse(e.get("date")))]
            for key in ("painScores", *(lane for lane, _, _ in LANES))}


def _domain(timeline: Mapping[str, Any], by_lane: Mapping[str, list[tuple[date, Any]]],
            as_of: date) -> tuple[Scale, date | None]:
    """The dates shown: from a little before the onset (or the first event) to past the as-of date
    and the end of the subacute window, so the reader sees where today falls in it."""
    onset = min((d for d in (_parse(o.get("date")) for o in timeline.get("onset") or ()) if d), default=None)
    windows = timeline.get("windows") or {}
    dated = [d for key in ("painScores", "imaging", "orders", "treatments", "boneHealth") for d, _ in by_lane[key]]
    anchor = onset or min(dated, default=as_of - timedelta(days=28))
    floor = anchor - timedelta(days=EARLIER_DAYS)
    start = min([anchor, *(d for d in dated if d >= floor)]) - timedelta(days=4)
    end_candidates = [as_of, *(d for d in dated if d >= floor)]
    if onset and windows.get("maxDays") is not None:
        end_candidates.append(onset + timedelta(days=int(windows["maxDays"]) + 1))
    end = max(end_candidates) + timedelta(days=4)
    return Scale(start, end), floor if any(d < floor for d in dated) else None


def _ticks(scale: Scale) -> list[date]:
    """Weekly ticks (Mondays) for a short span, else the first of each month."""
    out = []
    if scale.days <= 150:
        day = scale.start + timedelta(days=(7 - scale.start.weekday()) % 7)
        while day <= scale.end:
            out.append(day)
            day += timedelta(days=7 if scale.days <= 75 else 14)
    else:
        day = date(scale.start.year, scale.start.month, 1)
        while day <= scale.end:
            if day >= scale.start:
                out.append(day)
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


@lru_cache(maxsize=_SHORT_DATES)
def _short_date(day: date) -> str:
    """"5 Jun": the axis's ticks (Mondays, firsts of months) and the as-of date, the same few days for
    every patient of a season; `strftime` is the costliest call of a tick (~1.6 us, a locale lookup)."""
    return f"{day.day} {day.strftime('%b')}"


def _label(x: float | str, y: float, markup: str, *, anchor: str = "middle", css: str = "", color: str = "") -> str:
    """A `<text>` of markup already safe: a number, a date or words of this module's own. `x` may be a
    coordinate's text already written (the same characters an f-string writes of the float)."""
    fill = f' fill="{color}"' if color else ""
    klass = f' class="{css}"' if css else ""
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}"{klass}{fill}>{markup}</text>'


def _text(x: float, y: float, body: str, *, anchor: str = "middle", css: str = "", color: str = "") -> str:
    """A `<text>` of words that may come from the record: escaped."""
    return _label(x, y, escape(body), anchor=anchor, css=css, color=color)


@lru_cache(maxsize=_PAIN_YS)
def _pain_y(value: float) -> float:
    """A score's height: remembered, since scores take few values (0-10) and the clamp and the rounding
    cost ~0.5 us, about twenty times a picture."""
    return round(PAIN_BOTTOM - (PAIN_BOTTOM - PAIN_TOP) * max(0.0, min(10.0, value)) / 10, 1)


# The axis line, the lanes' names and the pain scale's 0, 5 and 10: the same in every picture.
_FRAME = "".join([
    f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" stroke="{COLORS["text"]}"/>',
    _text(LEFT - 22, (PAIN_TOP + PAIN_BOTTOM) / 2 + 4, "Pain (0-10)", anchor="end", css="tl-lane",
          color=COLORS["text"]),
    *(_text(LEFT - 8, y + 4, label, anchor="end", css="tl-lane", color=COLORS["text"]) for _key, label, y in LANES),
    *(_text(LEFT - 2, _pain_y(value) + 3, str(value), anchor="end", css="tl-tick", color=COLORS["muted"])
      for value in (0, 5, 10)),
])
_PAIN_MARK = f'fill="{COLORS["pain"]}" stroke="#ffffff" stroke-width="1.5">'


def _group(dated: Iterable[tuple[date, Mapping[str, Any]]], scale: Scale) -> list[tuple[date, list[Mapping[str, Any]]]]:
    """Events of one lane merged when their marks would touch (closer than MERGE_PX): one mark at the
    first one's day, its title listing them all, so marks and labels never pile up."""
    dated = sorted(dated, key=lambda pair: pair[0])
    groups: list[tuple[date, list[Mapping[str, Any]]]] = []
    for day, event in dated:
        if groups and scale.x(day) - scale.x(groups[-1][0]) < MERGE_PX:
            groups[-1][1].append(event)
        else:
            groups.append((day, [event]))
    return groups


def _event_words(lane: str, event: Mapping[str, Any]) -> str:
    if lane == "orders":
        levels = ", ".join(event.get("levels") or ()) or "no level"
        judged = " (judged)" if event.get("judged") else ""
        return f"{event.get('technique', 'augmentation')} {levels}, {event.get('status', '')}{judged}".strip(", ")
    return str(event.get("label") or event.get("reference") or lane)


def _lane_label(lane: str, events: Sequence[Mapping[str, Any]]) -> str:
    """The few words printed beside a mark (the title carries the rest)."""
    first = events[0]
    if lane == "imaging":
        kinds = list(dict.fromkeys(str(e.get("detail") or "imaging") for e in events))
        return "/".join(kinds)
    if lane == "orders":
        return _event_words(lane, first).split(",")[0]
    words = str(first.get("label") or "")
    words = words if len(words) <= 18 else words[:17] + "…"
    return words + (f" +{len(events) - 1}" if len(events) > 1 else "")


def render_timeline_svg(evaluation: Mapping[str, Any], *, id_prefix: str = "tl",
                        items: Sequence[tuple[str, str, str]] | None = None) -> Markup:
    """The `<svg>` element (safe markup) for one evaluation, or an empty string without a timeline.
    `items` is the evaluation's `timeline_items`, when the caller lists them too (the page)."""
    timeline = evaluation.get("timeline")
    as_of = _parse(evaluation.get("asOf"))
    if not isinstance(timeline, Mapping) or as_of is None:
        return Markup("")
    dated = _dated(timeline)
    scale, floor = _domain(timeline, dated, as_of)
    parts: list[str] = []
    onset_dates = [(d, o) for o in timeline.get("onset") or () if (d := _parse(o.get("date")))]
    windows = timeline.get("windows") or {}

    # Windows: acute [onset, onset + acute), subacute [.., onset + max], chronic beyond.
    if onset_dates and windows.get("acuteBelowDays") is not None and windows.get("maxDays") is not None:
        onset = min(d for d, _ in onset_dates)
        acute_end = onset + timedelta(days=int(windows["acuteBelowDays"]))
        sub_end = onset + timedelta(days=int(windows["maxDays"]) + 1)
        spans = (("acute", onset, acute_end, f"acute (< {int(windows['acuteBelowDays'])} days)"),
                 ("subacute", acute_end, sub_end, f"subacute (to day {int(windows['maxDays'])})"),
                 ("chronic", sub_end, scale.end, "chronic"))
        for key, a, b, words in spans:
            a, b = max(a, scale.start), min(b, scale.end)
            if b <= a:
                continue
            x1, x2 = scale.x(a), scale.x(b)
            parts.append(f'<rect x="{x1}" y="18" width="{round(x2 - x1, 1)}" height="{AXIS_Y - 18}" '
                         f'fill="{COLORS[key]}"><title>{escape(words)}: {a.isoformat()} to '
                         f'{(b - timedelta(days=1)).isoformat()}</title></rect>')
            if x2 - x1 > 60:
                parts.append(_text(round((x1 + x2) / 2, 1), 32, words, css="tl-window", color=COLORS["text"]))

    # Grid and axis.
    for tick in _ticks(scale):
        at_x = f"{scale.x(tick)}"  # written once for the line's two ends and the label
        parts.append(f'<line x1="{at_x}" y1="{PAIN_TOP}" x2="{at_x}" y2="{AXIS_Y}" stroke="{COLORS["grid"]}" '
                     f'stroke-width="0.5" stroke-dasharray="2 3"/>')
        parts.append(_label(at_x, AXIS_Y + 16, _short_date(tick), css="tl-tick", color=COLORS["muted"]))
    parts.append(_FRAME)

    # Pain: the policy's thresholds, the scores joined in time order.
    thresholds = timeline.get("painThresholds") or {}
    for key, words in (("outpatient", "outpatient threshold"), ("hospitalized", "hospitalized threshold")):
        value = thresholds.get(key)
        if isinstance(value, int | float):
            y = _pain_y(float(value))
            parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="{COLORS["threshold"]}" '
                         f'stroke-dasharray="6 4" stroke-width="1"><title>{escape(words)} {value:g}</title></line>')
            parts.append(_label(WIDTH - RIGHT - 2, y - 3, f"{words} {value:g}", anchor="end", css="tl-note",
                                color=COLORS["threshold"]))
    # A score's coordinates are written once, for the line, its mark and its label (a float's text is
    # the costliest part of a mark, and a page has about twenty scores).
    points = []
    for d, s in dated["painScores"]:
        if d >= scale.start:
            value = float(s.get("value", 0))
            x, y = scale.x(d), _pain_y(value)
            points.append((x, y, f"{x}", f"{y}", value, d, s))
    if len(points) > 1:
        path = " ".join(f"{at_x},{at_y}" for _x, _y, at_x, at_y, *_ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLORS["pain"]}" stroke-width="2"/>')
    for x, y, at_x, at_y, value, d, s in points:
        setting = str(s.get("setting") or "unknown")
        where = s.get("encounterLabel") or SETTING_WORDS.get(setting, setting)
        shown = f"{value:g}"
        title = escape(f"{s.get('scale', 'NRS')} {shown} on {d.isoformat()}, {where}")
        if setting == "hospitalized":
            parts.append(f'<rect x="{x - 5}" y="{y - 5}" width="10" height="10" {_PAIN_MARK}'
                         f'<title>{title}</title></rect>')
        else:
            parts.append(f'<circle cx="{at_x}" cy="{at_y}" r="5" {_PAIN_MARK}<title>{title}</title></circle>')
        parts.append(_label(at_x, y - 9, shown, css="tl-value", color=COLORS["text"]))

    # Event lanes: one diamond per day, a few words beside it, the whole list in its title.
    for key, _name, y in LANES:
        color = COLORS[key]
        last_x = -1000.0
        row = 0
        for day, events in _group(((d, e) for d, e in dated[key] if d >= scale.start), scale):
            x = scale.x(day)
            row = (row + 1) % 2 if x - last_x < 70 else 0
            last_x = x
            title = "; ".join(f"{e.get('date')}: {_event_words(key, e)}" for e in events)
            at_x = f"{x}"  # written once for the diamond's top and bottom
            parts.append(f'<path d="M{at_x} {y - 6} L{x + 6} {y} L{at_x} {y + 6} L{x - 6} {y} Z" fill="{color}">'
                         f'<title>{escape(title)}</title></path>')
            parts.append(_text(x + 9, y + 4 + row * 12, _lane_label(key, events),
                               anchor="start", css="tl-label", color=COLORS["text"]))

    # Onset and as-of lines on top of everything.
    for day, onset in onset_dates:
        if scale.start <= day <= scale.end:
            x = scale.x(day)
            levels = ", ".join(onset.get("levels") or ())
            when = f"{day.isoformat()} to {onset['dateTo']}" if onset.get("dateTo") else day.isoformat()
            parts.append(f'<line x1="{x}" y1="18" x2="{x}" y2="{AXIS_Y}" stroke="{COLORS["onset"]}" '
                         f'stroke-width="2"><title>{escape(f"onset {levels} {when}")}</title></line>')
            parts.append(_text(x + 4, 14, f"onset {levels}".strip(), anchor="start", css="tl-mark",
                               color=COLORS["onset"]))
    x = scale.x(as_of)
    parts.append(f'<line x1="{x}" y1="18" x2="{x}" y2="{AXIS_Y}" stroke="{COLORS["asof"]}" stroke-width="2" '
                 f'stroke-dasharray="5 3"><title>as of {as_of.isoformat()}</title></line>')
    parts.append(_label(x, AXIS_Y + 32, f"as of {_short_date(as_of)}", css="tl-mark", color=COLORS["asof"]))
    if floor is not None:
        parts.append(_text(LEFT + 2, AXIS_Y - 4, "◀ earlier events listed below", anchor="start", css="tl-note",
                           color=COLORS["muted"]))

    title_id, desc_id = f"{id_prefix}-title", f"{id_prefix}-desc"
    svg = (f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg" '
           f'preserveAspectRatio="xMinYMin meet" font-family="inherit">'
           f'<title id="{title_id}">Timeline of the fracture episode</title>'
           f'<desc id="{desc_id}">{escape(describe_timeline(evaluation, items))}</desc>'
           + "".join(parts) + "</svg>")
    return Markup(svg)


def timeline_items(evaluation: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(date, what, reference) for every dated event, oldest first: the timeline as a list."""
    timeline = evaluation.get("timeline") or {}
    items: list[tuple[str, str, str]] = []
    for onset in timeline.get("onset") or ():
        what = f"Symptom onset {', '.join(onset.get('levels') or ())}".strip()
        if onset.get("dateTo"):  # a partial date or an age: the days it may be, never one invented day
            what += f", between {onset.get('date')} and {onset['dateTo']} ({onset.get('written', 'a range')})"
        items.append((onset.get("date", ""), what, ", ".join(onset.get("references") or ())))
    for score in timeline.get("painScores") or ():
        setting = str(score.get("setting") or "unknown")
        where = score.get("encounterLabel") or SETTING_WORDS.get(setting, setting)
        items.append((score.get("date", ""), f"{score.get('scale', 'NRS')} {float(score.get('value', 0)):g}, {where}",
                      score.get("reference", "")))
    words = {"imaging": "Imaging", "orders": "Order", "treatments": "Treatment", "boneHealth": "Bone health"}
    for key, word in words.items():
        for event in timeline.get(key) or ():
            items.append((event.get("date", "undated"), f"{word}: {_event_words(key, event)}",
                          event.get("reference", "")))
    return sorted(items, key=lambda item: item[0])


def describe_timeline(evaluation: Mapping[str, Any], items: Sequence[tuple[str, str, str]] | None = None) -> str:
    """The picture in one paragraph of words (the SVG's `<desc>`); `items` as for render_timeline_svg."""
    as_of = evaluation.get("asOf", "")
    timeline = evaluation.get("timeline") or {}
    windows = timeline.get("windows") or {}
    onset = _parse(windows.get("from"))
    head = f"As of {as_of}."
    when = _parse(as_of)
    if onset and when:
        head += f" Day {(when - onset).days} since the onset on {onset.isoformat()}."
    body = "; ".join(f"{d} {what}" for d, what, _ in (timeline_items(evaluation) if items is None else items))
    return f"{head} {body}".strip()


__all__ = ["COLORS", "describe_timeline", "render_timeline_svg", "timeline_items"]
