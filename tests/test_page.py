"""The explanation page and its timeline (fhir_vcf.outputs.page, .timeline, .explain): what a person
reads, that it is accessible (headings, table semantics, WCAG AA contrast of the palette) and that it
is self-contained and safe (no script, nothing fetched, record text escaped)."""

from __future__ import annotations

import copy
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fhir_vcf.evaluation import evaluate_record
from fhir_vcf.outputs import explain
from fhir_vcf.outputs.governance import SEGMENTS, render_governance
from fhir_vcf.outputs.page import content_security_policy, render_not_found, render_page, style_csp_source, stylesheet
from fhir_vcf.outputs.timeline import COLORS, render_timeline_svg, timeline_items
from fhir_vcf.rules.policy import load_policies
from fhir_vcf.sources.files import load_file

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
AS_OF = date(2025, 6, 30)
POLICY = load_policies()["cms-lcd-pva"]


def evaluate(name: str) -> list[dict]:
    return [evaluate_record(r, as_of=AS_OF, policy=POLICY) for r in load_file(SAMPLES / name)]


@pytest.fixture(scope="module")
def moreau() -> dict:
    (evaluation,) = evaluate("eligible-outpatient-worsening.json")
    return evaluation


# --- contrast (WCAG 2.1: 1.4.3 text 4.5:1; 1.4.11 graphics 3:1) ----------------------------------------


def luminance(hex_color: str) -> float:
    rgb = [int(hex_color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def css_vars() -> dict[str, str]:
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", stylesheet()))


# Every foreground/background pair the stylesheet uses for text (see the comment atop page.css).
TEXT_PAIRS = [
    ("text", "bg"), ("muted", "bg"), ("link", "bg"), ("text", "panel"), ("muted", "panel"), ("link", "panel"),
    ("ok-fg", "ok-bg"), ("no-fg", "no-bg"), ("unknown-fg", "unknown-bg"), ("warn-fg", "warn-bg"),
    ("skip-fg", "skip-bg"), ("badge-fg", "badge-eligible"), ("badge-fg", "badge-not-eligible"),
    ("badge-fg", "badge-needs-review"), ("badge-fg", "badge-insufficient-data"), ("text", "ok-bg"),
]


@pytest.mark.parametrize(("fg", "bg"), TEXT_PAIRS, ids=[f"{f}-on-{b}" for f, b in TEXT_PAIRS])
def test_page_text_colours_meet_wcag_aa(fg: str, bg: str):
    colours = css_vars()
    assert contrast(colours[fg], colours[bg]) >= 4.5, (fg, bg, round(contrast(colours[fg], colours[bg]), 2))


def test_every_palette_colour_is_in_a_checked_pair():
    """A colour added to the stylesheet without a contrast check fails here."""
    used = {name for pair in TEXT_PAIRS for name in pair} | {"focus", "line"}
    assert set(css_vars()) <= used, set(css_vars()) - used


def test_focus_ring_and_timeline_colours_stand_out():
    colours = css_vars()
    assert contrast(colours["focus"], colours["bg"]) >= 3.0  # WCAG 1.4.11 focus indicator
    for window in ("acute", "subacute", "chronic"):  # lane text sits on the window fills
        assert contrast(COLORS["text"], COLORS[window]) >= 4.5, window
        assert contrast(COLORS["muted"], COLORS[window]) >= 4.5, window
    for mark in ("pain", "threshold", "onset", "asof", "imaging", "orders", "treatments", "boneHealth"):
        for window in ("acute", "subacute", "chronic"):
            assert contrast(COLORS[mark], COLORS[window]) >= 3.0, (mark, window)
    for _, _, colour in SEGMENTS:  # the governance bars, on white
        assert contrast(colour, "#ffffff") >= 3.0


def test_contrast_function_knows_the_reference_values():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#777777", "#ffffff"), 2) == 4.48  # the classic near-miss grey fails AA


# --- structure and accessibility -------------------------------------------------------------------


class Outline(HTMLParser):
    """Headings, table cells, scripts, external references and ids of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.row_headers = 0
        self.captions = 0
        self.scripts = 0
        self.fetches: list[str] = []
        self.ids: list[str] = []
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "th" and a.get("scope") == "row":
            self.row_headers += 1
        if tag == "caption":
            self.captions += 1
        if tag == "script":
            self.scripts += 1
        if tag == "html":
            self.lang = a.get("lang") or ""
        for name in ("src", "srcset") + (("href",) if tag in {"link", "use", "image"} else ()):
            value = a.get(name)
            if value and not value.startswith("#"):
                self.fetches.append(value)
        if a.get("id"):
            self.ids.append(a["id"] or "")


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


def test_the_page_is_self_contained_accessible_html(moreau):
    html = render_page([moreau])
    page = outline(html)
    assert page.lang == "en"
    assert page.scripts == 0 and page.fetches == []  # nothing to run, nothing to fetch: works offline
    assert page.headings[0] == 1 and page.headings.count(1) == 1
    assert all(b - a <= 1 for a, b in zip(page.headings, page.headings[1:], strict=False))  # no skipped level
    assert page.row_headers == len(moreau["criteria"])  # each criterion heads its row
    assert page.captions >= 1
    assert len(page.ids) == len(set(page.ids))
    assert 'href="#main"' in html  # the skip link for keyboard users
    assert ":focus-visible" in stylesheet()


def test_the_csp_hash_allows_exactly_the_inline_stylesheet(moreau):
    import base64
    import hashlib

    html = render_page([moreau])
    inline = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert style_csp_source() == f"'sha256-{digest}'"
    assert "default-src 'none'" in content_security_policy() and "script-src" not in content_security_policy()


def test_record_text_is_escaped_never_markup(moreau):
    hostile = copy.deepcopy(moreau)
    hostile["patientDetail"]["name"] = '<script>alert("x")</script>'
    hostile["criteria"][0]["reason"] = "<img src=x onerror=alert(1)>"
    html = render_page([hostile])
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html


def test_every_timeline_text_is_escaped(moreau):
    """The picture's marks and tooltips escape what the evaluation says, the onset's levels and range too."""
    hostile = copy.deepcopy(moreau)
    timeline = hostile["timeline"]
    timeline["onset"][0].update(levels=["L1", "<script>x</script>"], dateTo="2025-06-09<img src=x>")
    for key in ("imaging", "treatments", "boneHealth", "painScores"):
        for event in timeline[key]:
            event.update(label="<script>y</script>", detail="<b>", encounterLabel="<i>", reference="'&\"")
    svg = str(render_timeline_svg(hostile))
    assert "<script>" not in svg and "<img" not in svg and "<b>" not in svg and "<i>" not in svg
    assert "onset L1, &lt;script&gt;x&lt;/script&gt; 2025-06-02 to 2025-06-09&lt;img src=x&gt;" in svg


# --- what a person reads ---------------------------------------------------------------------------


def test_header_shows_patient_decision_technique_levels_policy_and_date(moreau):
    html = render_page([moreau])
    for text in ("Helene Moreau", "1951-02-14", "MRN-P-MOREAU", "Patient/p-moreau", 'data-decision="eligible"',
                 "Vertebroplasty", "L1", "2025-06-30", "Medicare LCD L34106"):
        assert text in html, text


def test_each_criterion_has_status_words_icon_reason_readable_evidence_and_linked_source(moreau):
    html = render_page([moreau])
    row = re.search(r'<tr id="[^"]+-I4".*?</tr>', html, re.S).group(0)
    assert "Met" in row and 'href="#i-ok"' in row  # words and icon
    assert "NRS 7 on 2025-06-20, clinic visit" in row  # evidence as a person reads it
    assert "Observation/p-moreau-nrs-23" in row  # the FHIR reference, secondary
    assert 'href="https://www.cms.gov/medicare-coverage-database/view/lcd.aspx?lcdid=34106"' in row
    assert "LCD L34106, inclusion 1d" in row
    row = re.search(r'<tr id="[^"]+-I3".*?</tr>', html, re.S).group(0)
    # The reason quotes the report's sentence (issue 8); the evidence line names the report, not the quote again.
    assert "MRI spine, 2025-06-05" in row and "STIR hyperintense bone marrow edema" in row
    assert row.count("STIR hyperintense bone marrow edema") == 1


def test_an_exclusion_ruled_out_by_a_report_says_so(moreau):
    x11 = next(c for c in moreau["criteria"] if c["id"] == "X11")
    assert x11["status"] == "absent"
    assert "No retropulsion" in x11["reason"] and not x11["reason"].startswith(x11["title"])


def test_the_checklist_lists_what_is_missing():
    (evaluation,) = evaluate("insufficient-radiograph-only.json")
    html = render_page([evaluation])
    boxes = re.findall(r'<input type="checkbox" id="([^"]+)"><label for="([^"]+)">([^<]+)</label>', html)
    assert [b[2] for b in boxes] == evaluation["missing"] and all(a == b for a, b, _ in boxes)


def test_the_careplan_activities_are_listed(moreau):
    html = render_page([moreau])
    for activity in explain.careplan_activities(moreau):
        assert activity["title"] in html
    assert "CPT 22511" in html


def test_not_applied_is_its_own_status_on_the_page():
    (evaluation,) = evaluate("malignant-myeloma-four-levels.json")
    assert {c["id"] for c in evaluation["criteria"] if c["status"] == "not-applied"} == {"I1", "I5"}
    html = render_page([evaluation])
    row = re.search(r'<tr id="[^"]+-I1".*?</tr>', html, re.S).group(0)
    assert 'data-status="not-applied"' in row and "Not applied" in row and 'href="#i-skip"' in row
    assert "A56572" in row and "articleid=56572" in row


def test_several_patients_make_one_page_with_a_section_each():
    evaluations = evaluate("two-patients.json")
    html = render_page(evaluations)
    assert html.count('<article class="evaluation"') == 2
    assert html.count("<h1") == 1 and html.count('<nav class="patients"') == 1
    page = outline(html)
    assert len(page.ids) == len(set(page.ids))  # two timelines, two checklists: ids stay unique


def test_the_not_found_page_says_nothing_about_anyone():
    html = render_not_found()
    assert "Not found" in html and "Patient" not in html and "<script" not in html


# --- the timeline -----------------------------------------------------------------------------------


def test_the_timeline_draws_onset_windows_pain_imaging_treatment_and_as_of(moreau):
    svg = str(render_timeline_svg(moreau))
    assert svg.startswith("<svg") and 'role="img"' in svg and "<desc" in svg
    assert "onset L1" in svg and "as of 30 Jun" in svg
    assert "acute (&lt; 42 days)" in svg and "subacute (to day 84)" in svg
    assert svg.count("<circle") == 2  # the two outpatient NRS scores
    assert "NRS 7 on 2025-06-20, clinic visit" in svg  # a score's tooltip
    assert "outpatient threshold 5" in svg
    assert "MRI lumbar spine without contrast" in svg and "oxycodone" in svg and "DXA bone density" in svg
    assert "Day 28 since the onset on 2025-06-02" in svg  # the picture in words, for screen readers


def test_the_timeline_shows_orders_and_inpatient_scores():
    (tanaka,) = evaluate("eligible-requested-kyphoplasty-t12-l1.json")
    svg = str(render_timeline_svg(tanaka))
    assert "kyphoplasty T12, L1" in svg
    (inpatient,) = evaluate("eligible-hospitalized-nrs8.json")
    assert "<rect x=" in str(render_timeline_svg(inpatient)) and "hospitalized threshold 8" in str(
        render_timeline_svg(inpatient))


def test_an_old_study_does_not_squash_the_episode():
    """A 2019 MRI stays in the list but is not drawn: the picture keeps the weeks that matter legible."""
    path = Path(__file__).resolve().parent / "data" / "realistic" / "synthea-prior-2019-mri-no-edema.json"
    (evaluation,) = [evaluate_record(r, as_of=AS_OF, policy=POLICY) for r in load_file(path)]
    svg = str(render_timeline_svg(evaluation))
    assert "2019" not in re.sub(r"<desc.*?</desc>", "", svg, flags=re.S) and "earlier events" in svg
    assert any(day.startswith("2019") for day, _, _ in timeline_items(evaluation))


def test_without_a_timeline_there_is_no_picture(moreau):
    bare = {k: v for k, v in moreau.items() if k != "timeline"}
    assert str(render_timeline_svg(bare)) == ""
    assert "The episode" not in render_page([bare])


# --- governance rendering ------------------------------------------------------------------------------


def test_governance_page_draws_charts_and_tables_from_the_numbers():
    counts = {"shown": 5, "accepted": 2, "overridden": 2, "noFeedback": 1}
    summary = {
        "generated": "2025-06-30T12:00:00Z", "weeks": 2, "from": "2025-06-16", "to": "2025-06-29",
        "totals": counts,
        "byDecision": [{"decision": "not-eligible", **counts, "overrideReasons": [
            {"code": "clinical-judgement", "display": "Clinical judgement", "system": "s", "count": 2}]}],
        "byWeek": [{"week": "2025-06-16", **counts, "byDecision": {}},
                   {"week": "2025-06-23", "shown": 0, "accepted": 0, "overridden": 0, "noFeedback": 0,
                    "byDecision": {}}],
        "overrideReasons": [{"code": "clinical-judgement", "display": "Clinical judgement", "system": "s",
                             "count": 2}],
    }
    html = render_governance(summary)
    page = outline(html)
    assert page.scripts == 0 and page.fetches == []
    assert html.count("<svg viewBox") == 3  # per week, per decision, override reasons
    assert "Clinical judgement" in html and "Not eligible" in html
    assert re.search(r"<td class=\"num\">50 %</td>", html)  # 2 of 4 answered cards overridden


# --- the evaluation object's words, across every bundle we have ------------------------------------------


@pytest.fixture(scope="module")
def every_evaluation() -> list[dict]:
    paths = [p for folder in (SAMPLES, SAMPLES.parent / "tests" / "data" / "realistic")
             for p in sorted(folder.glob("*.json")) if p.name != "expected.json"]
    return [evaluate_record(r, as_of=AS_OF, policy=POLICY) for p in paths for r in load_file(p)]


def test_no_reason_just_repeats_its_criterion_title(every_evaluation):
    for evaluation in every_evaluation:
        for c in evaluation["criteria"]:
            reason = c["reason"].lower()
            assert not reason.startswith(c["title"].lower()), (evaluation["patient"], c["id"], c["reason"])
            assert "none documented" not in reason, (evaluation["patient"], c["id"], c["reason"])


def test_every_lcd_criterion_links_its_published_source(every_evaluation):
    urls = {s["id"]: s["url"] for s in every_evaluation[0]["policySources"] if "url" in s}
    assert set(urls) == {"LCD", "A56572", "RTC"}
    for evaluation in every_evaluation:
        for c in evaluation["criteria"]:
            assert c.get("sourceUrl") in urls.values(), (c["id"], c["source"])


def test_every_evaluation_has_a_dated_timeline(every_evaluation):
    for evaluation in every_evaluation:
        timeline = evaluation["timeline"]
        assert set(timeline) >= {"onset", "painScores", "imaging", "orders", "treatments", "boneHealth"}
        dated = [e["date"] for key in ("painScores", "imaging", "treatments", "boneHealth") for e in timeline[key]]
        assert all(date.fromisoformat(d) <= AS_OF for d in dated), evaluation["patient"]


def test_one_page_for_every_bundle_renders_with_unique_ids(every_evaluation):
    """The CLI's many-patient page over every shape we know: no crash, ids unique across sections."""
    page = outline(render_page(every_evaluation))
    assert len(page.ids) == len(set(page.ids))
    assert page.headings.count(2) == len(every_evaluation)
