"""The board's report (boligdata report): renders for every plan, offline, complete; recorded as reported;
a later correction leaves what a report said unchanged and the next report lists the revision."""

import re
import shutil

import duckdb
import pytest
from pypdf import PdfReader

from flows.cli import main
from tests.conftest import REPO, ingest_all, query
from transforms.steward.board_report import write_report
from warehouse.files import internal_file

DEMO = REPO / "demo" / "landing"


def build(landing, tmp_path):
    warehouse = tmp_path / "w.duckdb"
    ingest_all(landing, warehouse)
    return warehouse


@pytest.fixture(scope="module")
def golden_warehouse(golden, tmp_path_factory):
    return build(golden / "landing", tmp_path_factory.mktemp("golden-report"))


def latest_year(warehouse, plan_id):
    return query(internal_file(warehouse), """SELECT max(year) FROM marts.indicator_values WHERE level IN ('plan', 'area')
        AND (scope_id = ? OR scope_id IN (SELECT area_id FROM ref.plan_areas WHERE plan_id = ?))""", [plan_id, plan_id])[0][0]


def assert_complete_and_offline(warehouse, plan_id, written):
    html = written.html.read_text(encoding="utf-8")
    # offline: no URL at all, every src= a data: URI
    assert "http" not in html and "//" not in html
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', html))
    assert re.findall(r'src="data:image/svg\+xml;base64,', html)
    # every target of the plan, with and without data, and every indicator of the plan appears
    internal = internal_file(warehouse)
    for (target_id,) in query(internal, "SELECT DISTINCT target_id FROM ref.targets WHERE plan_id = ?", [plan_id]):
        assert target_id in html, target_id
    indicators = query(internal, """SELECT DISTINCT indicator FROM marts.indicator_values WHERE level IN ('plan', 'area')
        AND year <= ? AND (scope_id = ? OR scope_id IN (SELECT area_id FROM ref.plan_areas WHERE plan_id = ?))""",
                       [latest_year(warehouse, plan_id), plan_id, plan_id])
    assert indicators
    for (indicator,) in indicators:
        assert f"({indicator})" in html, indicator
    pages = PdfReader(written.pdf).pages
    assert len(pages) >= 3
    text = "".join(page.extract_text() for page in pages[:2])
    assert "Bestyrelsesrapport" in text and "opfyldt" in text


def test_the_report_renders_for_every_plan_of_the_golden_data(golden_warehouse, tmp_path):
    plans = [p for (p,) in query(golden_warehouse, "SELECT plan_id FROM ref.plans ORDER BY 1")]
    for plan_id in plans:
        year = latest_year(golden_warehouse, plan_id)
        written = write_report(golden_warehouse, plan_id, str(year), tmp_path / "out")
        assert_complete_and_offline(golden_warehouse, plan_id, written)
    reports = query(golden_warehouse, "SELECT plan_id, html_sha256, pdf_sha256 FROM meta.reports ORDER BY report_id")
    assert [r[0] for r in reports] == plans  # in the published file as well as the internal one
    assert query(internal_file(golden_warehouse), "SELECT count(*) FROM meta.reports")[0][0] == len(plans)


def test_the_demo_report_and_a_half_year_report(tmp_path, capsys):
    warehouse = build(DEMO, tmp_path)
    assert main(["report", "--warehouse", str(warehouse), "--plan", "slagelse-2017", "--period", "2021",
                 "--out", str(tmp_path / "out")]) == 0
    assert "report 1 (slagelse-2017, 2021) in" in (said := capsys.readouterr().out) and "the plan's first report:" in said
    written = write_report(warehouse, "slagelse-2017", "2021-H1", tmp_path / "out")
    assert written.previous_report_id == 1
    assert_complete_and_offline(warehouse, "slagelse-2017", written)
    html = written.html.read_text(encoding="utf-8")
    assert "Halvårstal" in html and "2021-H1" in html
    # the deliveries behind the figures, their status in the board's words
    assert "<td>indlæst</td>" in html and "<td>indlæst, rækker i karantæne</td>" in html and "<td>loaded" not in html
    # the overview names each target by its indicator in Danish, its id below
    overview = html.split("i overblik")[1].split("</table>")[0]
    assert "<td>Fraflytningsprocent<br>2-fraflytning-falder-10-pct</td>" in overview
    halves = query(warehouse, "SELECT DISTINCT period FROM meta.reported_figures WHERE report_id = ? AND kind = 'half_year'",
                   [written.report_id])
    assert {p for (p,) in halves} == {"2020-H1", "2020-H2", "2021-H1"}
    capsys.readouterr()
    assert main(["reports", "--warehouse", str(warehouse)]) == 0
    assert "rapport-2-slagelse-2017-2021-H1.pdf" in capsys.readouterr().out
    # the auditor: a figure and a verdict as reported
    assert main(["explain", "4-afgoerelser-under-28", "slagelse-2017", "2021", "--report", "1", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "as reported in report 1" in out and "opfyldt" in out and "sigtelser_slagelse_2019-2021.csv" in out
    assert main(["explain", "4-afgoerelser-under-28", "slagelse-2017", "2021", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "003 §5.2" in out and "rule below" in out and "lines " in out and "sha256 " in out


@pytest.mark.parametrize("plan, period, reason", [
    ("nowhere-2030", "2021", "no plan"),
    ("slagelse-2017", "2012", "no data"),
    ("slagelse-2017", "2021-H3", "neither a year"),
])
def test_bad_input_is_one_line_and_records_nothing(tmp_path, capsys, plan, period, reason):
    warehouse = build(DEMO, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["report", "--warehouse", str(warehouse), "--plan", plan, "--period", period, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, no internal file: nothing recorded


def test_an_output_folder_that_is_not_writable(tmp_path, capsys):
    warehouse = build(DEMO, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["report", "--warehouse", str(warehouse), "--plan", "slagelse-2017", "--period", "2021",
                 "--out", str(blocker / "out")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not internal_file(warehouse).name.endswith(".internal.duckdb")  # never written
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM meta.reports").fetchall()[0][0] == 0


def test_a_correction_after_a_report_leaves_it_unchanged_and_the_next_report_lists_the_revision(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(DEMO, landing)
    warehouse = build(landing, tmp_path)
    first = write_report(warehouse, "slagelse-2017", "2021", tmp_path / "out")
    said = query(warehouse, "SELECT * FROM meta.reported_figures WHERE report_id = ? ORDER BY ALL", [first.report_id])
    record = query(warehouse, "SELECT * FROM meta.reports WHERE report_id = ?", [first.report_id])
    # BoligKorsør corrects department 015's move-outs in 2021 (49 -> 60): Motalavej's fraflytningsprocent changes
    original = (DEMO / "boligorg_afdelinger" / "boligkorsoer_2019-2021.csv").read_bytes()
    corrected = original.replace(b";015;2021;300;49;", b";015;2021;300;60;")
    assert corrected != original
    (landing / "boligorg_afdelinger" / "boligkorsoer_2019-2021_rettet.csv").write_bytes(corrected)
    ingest_all(landing, internal_file(warehouse))
    from warehouse.build import write_published

    write_published(internal_file(warehouse), warehouse)
    (new_delivery,) = query(warehouse, "SELECT max(delivery_id) FROM meta.deliveries WHERE file_name LIKE '%rettet%'")[0]
    second = write_report(warehouse, "slagelse-2017", "2021", tmp_path / "out")
    assert second.revisions >= 1
    assert query(warehouse, "SELECT * FROM meta.reported_figures WHERE report_id = ? ORDER BY ALL", [first.report_id]) == said
    assert query(warehouse, "SELECT * FROM meta.reports WHERE report_id = ?", [first.report_id]) == record
    old, new = query(warehouse, """SELECT r.report_id, f.value FROM meta.reported_figures AS f JOIN meta.reports AS r USING (report_id)
        WHERE f.kind = 'indicator' AND f.indicator = 'fraflytningsprocent' AND f.scope_id = 'motalavej' AND f.period = '2021'
        ORDER BY r.report_id""")
    assert old[1] != new[1]
    assert new_delivery in query(warehouse, """SELECT delivery_ids FROM meta.reported_figures WHERE report_id = ?
        AND kind = 'indicator' AND indicator = 'fraflytningsprocent' AND scope_id = 'motalavej' AND period = '2021'""",
                                 [second.report_id])[0][0]
    html = second.html.read_text(encoding="utf-8")
    assert "Tal rettet siden sidste rapport" in html and "boligkorsoer_2019-2021_rettet.csv" in html
    assert f"Sammenlignet med rapport {first.report_id}" in html
    # the corrected figure is still no fall of 10 % on 2020: the verdict stands, and the report says so
    assert second.changed_verdicts == 0 and "Ingen: hvert mål har samme vurdering som i sidste rapport." in html

    # a second correction (49 -> 20 move-outs) makes Motalavej's fall large enough: the verdict turns
    (landing / "boligorg_afdelinger" / "boligkorsoer_2019-2021_rettet_igen.csv").write_bytes(
        original.replace(b";015;2021;300;49;", b";015;2021;300;20;"))
    ingest_all(landing, internal_file(warehouse))
    write_published(internal_file(warehouse), warehouse)
    third = write_report(warehouse, "slagelse-2017", "2021", tmp_path / "out")
    assert third.changed_verdicts == 1
    assert query(warehouse, """SELECT report_id, met, verdict FROM meta.reported_figures WHERE kind = 'target'
        AND target_id = '2-fraflytning-falder-10-pct' AND scope_id = 'motalavej' ORDER BY report_id""") == [
        (first.report_id, False, "ikke opfyldt"), (second.report_id, False, "ikke opfyldt"), (third.report_id, True, "opfyldt")]
    text = re.sub(r"<[^>]+>", "|", third.html.read_text(encoding="utf-8"))
    changed = text[text.index("Vurderinger ændret siden sidste rapport"):]
    assert re.search(r"2-fraflytning-falder-10-pct\|+Motalavej \(Korsør\)\|+2021: ikke opfyldt\|+2021: opfyldt\|+"
                     r"\d+: boligorg_afdelinger/boligkorsoer_2019-2021_rettet_igen.csv", changed)
    pages = "\n".join(page.extract_text() for page in PdfReader(third.pdf).pages)
    assert "Vurderinger ændret siden sidste rapport" in pages and "2021: opfyldt" in pages
