"""The timeline's fast paths (fhir_vcf.outputs.timeline): each event's day read once a picture, a day's
position worked out once, the frame (axis, lane names, the pain scale) written once a worker, numbers
and dates written without an escape they cannot need. The picture is held, byte for byte, to the
function as it was before them, on every bundle of samples/ and tests/data/ under every policy and
both as-of dates, and on hostile text in every string. The copy (`_svg_as_before`) is the tenth
round's picture: a change meant to alter the picture changes the copy with it."""

# ruff: noqa: E501

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from every_bundle import evaluations_by_bundle, hostile
from markupsafe import Markup, escape

from fhir_vcf.outputs import timeline
from fhir_vcf.outputs.timeline import (
    AXIS_Y,
    COLORS,
    EARLIER_DAYS,
    HEIGHT,
    LANES,
    LEFT,
    MERGE_PX,
    PAIN_BOTTOM,
    PAIN_TOP,
    PLOT,
    RIGHT,
    SETTING_WORDS,
    WIDTH,
    _event_words,
    _lane_label,
    _parse,
    _short_date,
    _ticks,
    describe_timeline,
    render_timeline_svg,
)

# --- the picture as it was drawn before the fast paths ---------------------------------------------------

@dataclass(frozen=True)
class _ScaleAsBefore:
    start: date
    end: date

    @property
    def days(self) -> int:
        return max(1, (self.end - self.start).days)

    def x(self, day: date) -> float:
        return round(LEFT + PLOT * (day - self.start).days / self.days, 1)


def _domain_as_before(timeline: Mapping[str, Any], as_of: date) -> tuple[_ScaleAsBefore, date | None]:
    """The dates shown: from a little before the onset (or the first event) to past the as-of date
    and the end of the subacute window, so the reader sees where today falls in it."""
    onset = min((d for d in (_parse(o.get("date")) for o in timeline.get("onset") or ()) if d), default=None)
    windows = timeline.get("windows") or {}
    dated = [d for key in ("painScores", "imaging", "orders", "treatments", "boneHealth")
             for d in (_parse(e.get("date")) for e in timeline.get(key) or ()) if d]
    anchor = onset or min(dated, default=as_of - timedelta(days=28))
    floor = anchor - timedelta(days=EARLIER_DAYS)
    start = min([anchor, *(d for d in dated if d >= floor)]) - timedelta(days=4)
    end_candidates = [as_of, *(d for d in dated if d >= floor)]
    if onset and windows.get("maxDays") is not None:
        end_candidates.append(onset + timedelta(days=int(windows["maxDays"]) + 1))
    end = max(end_candidates) + timedelta(days=4)
    return _ScaleAsBefore(start, end), floor if any(d < floor for d in dated) else None


def _text_as_before(x: float, y: float, body: str, *, anchor: str = "middle", css: str = "", color: str = "") -> str:
    fill = f' fill="{color}"' if color else ""
    klass = f' class="{css}"' if css else ""
    return f'<text x="{x}" y="{y}" text-anchor="{anchor}"{klass}{fill}>{escape(body)}</text>'


def _group_as_before(events: Iterable[Mapping[str, Any]], scale: _ScaleAsBefore) -> list[tuple[date, list[Mapping[str, Any]]]]:
    """Events of one lane merged when their marks would touch (closer than MERGE_PX): one mark at the
    first one's day, its title listing them all, so marks and labels never pile up."""
    dated = sorted(((d, e) for e in events if (d := _parse(e.get("date"))) is not None), key=lambda pair: pair[0])
    groups: list[tuple[date, list[Mapping[str, Any]]]] = []
    for day, event in dated:
        if groups and scale.x(day) - scale.x(groups[-1][0]) < MERGE_PX:
            groups[-1][1].append(event)
        else:
            groups.append((day, [event]))
    return groups


def _svg_as_before(evaluation: Mapping[str, Any], *, id_prefix: str = "tl") -> Markup:
    """`render_timeline_svg` as it was before its fast paths."""
    timeline = evaluation.get("timeline")
    as_of = _parse(evaluation.get("asOf"))
    if not isinstance(timeline, Mapping) or as_of is None:
        return Markup("")
    scale, floor = _domain_as_before(timeline, as_of)
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
                parts.append(_text_as_before(round((x1 + x2) / 2, 1), 32, words, css="tl-window", color=COLORS["text"]))

    # Grid and axis.
    for tick in _ticks(scale):
        x = scale.x(tick)
        parts.append(f'<line x1="{x}" y1="{PAIN_TOP}" x2="{x}" y2="{AXIS_Y}" stroke="{COLORS["grid"]}" '
                     f'stroke-width="0.5" stroke-dasharray="2 3"/>')
        parts.append(_text_as_before(x, AXIS_Y + 16, _short_date(tick), css="tl-tick", color=COLORS["muted"]))
    parts.append(f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" stroke="{COLORS["text"]}"/>')

    # Lane labels.
    parts.append(_text_as_before(LEFT - 22, (PAIN_TOP + PAIN_BOTTOM) / 2 + 4, "Pain (0-10)", anchor="end", css="tl-lane",
                       color=COLORS["text"]))
    for _key, label, y in LANES:
        parts.append(_text_as_before(LEFT - 8, y + 4, label, anchor="end", css="tl-lane", color=COLORS["text"]))

    # Pain: axis 0/5/10, the policy's thresholds, the scores joined in time order.
    def pain_y(value: float) -> float:
        return round(PAIN_BOTTOM - (PAIN_BOTTOM - PAIN_TOP) * max(0.0, min(10.0, value)) / 10, 1)

    for value in (0, 5, 10):
        parts.append(_text_as_before(LEFT - 2, pain_y(value) + 3, str(value), anchor="end", css="tl-tick",
                           color=COLORS["muted"]))
    thresholds = timeline.get("painThresholds") or {}
    for key, words in (("outpatient", "outpatient threshold"), ("hospitalized", "hospitalized threshold")):
        value = thresholds.get(key)
        if isinstance(value, int | float):
            y = pain_y(float(value))
            parts.append(f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="{COLORS["threshold"]}" '
                         f'stroke-dasharray="6 4" stroke-width="1"><title>{escape(words)} {value:g}</title></line>')
            parts.append(_text_as_before(WIDTH - RIGHT - 2, y - 3, f"{words} {value:g}", anchor="end", css="tl-note",
                               color=COLORS["threshold"]))
    scores = [(d, s) for s in timeline.get("painScores") or () if (d := _parse(s.get("date"))) and d >= scale.start]
    points = [(scale.x(d), pain_y(float(s.get("value", 0))), d, s) for d, s in scores]
    if len(points) > 1:
        path = " ".join(f"{x},{y}" for x, y, _, _ in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{COLORS["pain"]}" stroke-width="2"/>')
    for x, y, d, s in points:
        setting = str(s.get("setting") or "unknown")
        where = s.get("encounterLabel") or SETTING_WORDS.get(setting, setting)
        title = f"{s.get('scale', 'NRS')} {float(s.get('value', 0)):g} on {d.isoformat()}, {where}"
        shape = (f'<rect x="{x - 5}" y="{y - 5}" width="10" height="10"' if setting == "hospitalized"
                 else f'<circle cx="{x}" cy="{y}" r="5"')
        parts.append(f'{shape} fill="{COLORS["pain"]}" stroke="#ffffff" stroke-width="1.5">'
                     f'<title>{escape(title)}</title></{"rect" if setting == "hospitalized" else "circle"}>')
        parts.append(_text_as_before(x, y - 9, f"{float(s.get('value', 0)):g}", css="tl-value", color=COLORS["text"]))

    # Event lanes: one diamond per day, a few words beside it, the whole list in its title.
    for key, _label, y in LANES:
        color = COLORS[key]
        last_x = -1000.0
        row = 0
        for day, events in _group_as_before((e for e in timeline.get(key) or () if (_parse(e.get("date")) or date.min)
                                   >= scale.start), scale):
            x = scale.x(day)
            row = (row + 1) % 2 if x - last_x < 70 else 0
            last_x = x
            title = "; ".join(f"{e.get('date')}: {_event_words(key, e)}" for e in events)
            parts.append(f'<path d="M{x} {y - 6} L{x + 6} {y} L{x} {y + 6} L{x - 6} {y} Z" fill="{color}">'
                         f'<title>{escape(title)}</title></path>')
            parts.append(_text_as_before(x + 9, y + 4 + row * 12, _lane_label(key, events),
                               anchor="start", css="tl-label", color=COLORS["text"]))

    # Onset and as-of lines on top of everything.
    for day, onset in onset_dates:
        if scale.start <= day <= scale.end:
            x = scale.x(day)
            levels = ", ".join(onset.get("levels") or ())
            when = f"{day.isoformat()} to {onset['dateTo']}" if onset.get("dateTo") else day.isoformat()
            parts.append(f'<line x1="{x}" y1="18" x2="{x}" y2="{AXIS_Y}" stroke="{COLORS["onset"]}" '
                         f'stroke-width="2"><title>{escape(f"onset {levels} {when}")}</title></line>')
            parts.append(_text_as_before(x + 4, 14, f"onset {levels}".strip(), anchor="start", css="tl-mark",
                               color=COLORS["onset"]))
    x = scale.x(as_of)
    parts.append(f'<line x1="{x}" y1="18" x2="{x}" y2="{AXIS_Y}" stroke="{COLORS["asof"]}" stroke-width="2" '
                 f'stroke-dasharray="5 3"><title>as of {as_of.isoformat()}</title></line>')
    parts.append(_text_as_before(x, AXIS_Y + 32, f"as of {_short_date(as_of)}", css="tl-mark", color=COLORS["asof"]))
    if floor is not None:
        parts.append(_text_as_before(LEFT + 2, AXIS_Y - 4, "◀ earlier events listed below", anchor="start", css="tl-note",
                           color=COLORS["muted"]))

    title_id, desc_id = f"{id_prefix}-title", f"{id_prefix}-desc"
    svg = (f'<svg class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'aria-labelledby="{title_id} {desc_id}" xmlns="http://www.w3.org/2000/svg" '
           f'preserveAspectRatio="xMinYMin meet" font-family="inherit">'
           f'<title id="{title_id}">Timeline of the fracture episode</title>'
           f'<desc id="{desc_id}">{escape(describe_timeline(evaluation))}</desc>'
           + "".join(parts) + "</svg>")
    return Markup(svg)


# --- the tests ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def every_evaluation() -> list[dict]:
    return [e for evaluations in evaluations_by_bundle().values() for e in evaluations]


def test_the_picture_is_drawn_as_before_for_every_bundle(every_evaluation):
    assert len(every_evaluation) > 500
    for evaluation in every_evaluation:
        assert render_timeline_svg(evaluation, id_prefix="p1-x-tl") == _svg_as_before(evaluation, id_prefix="p1-x-tl")


def test_hostile_text_is_drawn_as_before(every_evaluation):
    for evaluation in every_evaluation[::6]:
        marked = hostile(evaluation)  # dates still read: a date is its first ten characters
        svg = render_timeline_svg(marked)
        assert svg == _svg_as_before(marked)
        assert "<script>" not in svg and "<b>" not in svg


def test_odd_timelines_are_drawn_as_before():
    odd = [{"asOf": "2025-06-30", "timeline": {}},
           {"asOf": "2025-06-30", "timeline": {"painScores": [{"date": "2025-06-01", "value": 12, "setting": "hospitalized"},
                                                              {"date": "bad"}, {"value": 3}],
                                               "imaging": [{"date": "2019-01-01", "detail": "MRI"}, {"label": "undated"}],
                                               "painThresholds": {"outpatient": 5, "hospitalized": "8"}}},
           {"asOf": "2025-06-30", "timeline": {"onset": [{"date": "2024-01-01", "levels": ["L1"], "dateTo": "2024-03-01"}],
                                               "windows": {"acuteBelowDays": 42, "maxDays": 84},
                                               "orders": [{"date": "2025-06-01", "levels": ["L1", "L2"], "judged": True}] * 3}}]
    for evaluation in odd:
        assert render_timeline_svg(evaluation) == _svg_as_before(evaluation)


def test_the_frame_is_the_text_it_stands_for():
    frame = "".join([
        f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" stroke="{COLORS["text"]}"/>',
        _text_as_before(LEFT - 22, (PAIN_TOP + PAIN_BOTTOM) / 2 + 4, "Pain (0-10)", anchor="end", css="tl-lane",
                        color=COLORS["text"]),
        *(_text_as_before(LEFT - 8, y + 4, label, anchor="end", css="tl-lane", color=COLORS["text"])
          for _key, label, y in LANES),
        *(_text_as_before(LEFT - 2, round(PAIN_BOTTOM - (PAIN_BOTTOM - PAIN_TOP) * v / 10, 1) + 3, str(v), anchor="end",
                          css="tl-tick", color=COLORS["muted"]) for v in (0, 5, 10)),
    ])
    assert frame == timeline._FRAME


def test_a_days_position_is_the_same_asked_again():
    start = date(2025, 5, 1)
    for span in (1, 30, 57, 400):
        scale, plain = timeline.Scale(start, start + timedelta(days=span)), _ScaleAsBefore(start, start + timedelta(days=span))
        for offset in range(-3, span + 4):
            day = start + timedelta(days=offset)
            assert scale.x(day) == plain.x(day) and scale.x(day) == plain.x(day)
        assert scale.days == plain.days


def test_an_axis_date_reads_the_same_asked_again():
    """_short_date is remembered: every day of three years, asked twice, reads as strftime writes it."""
    start = date(2024, 1, 1)
    for offset in range(3 * 366):
        day = start + timedelta(days=offset)
        assert _short_date(day) == f"{day.day} {day.strftime('%b')}" == _short_date(day)
