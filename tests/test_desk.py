"""The steward's desk: status (CLI and page), json/csv output, mistakes that exit non-zero, the
warehouse's own reference data, and the desk in the browser over HTTP."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import NOEGLETAL_HEADER, REPO, ingest_all, land, query
from test_steward import _ExternalReferences

from flows.cli import main
from transforms.reference import (
    DEFAULT_REFERENCE_DIR,
    changed_defaults,
    reference_for,
    warehouse_reference_dir,
)
from transforms.steward.status import read_status, status_page_path, write_status_page


@pytest.fixture
def desk_warehouse(tmp_path):
    """A delivery with an unknown area and a missing value, and an empty (rejected) file."""
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "kommune_noegletal", "n.csv", [
        NOEGLETAL_HEADER,
        "2016;330;Motalavej;befolkning;1.500;",
        "2016;330;Motalvej;frivillige_18plus_andel;180;1060",
        "2016;330;Sydbyen;frivillige_18plus_andel;..;1000",
    ])
    (landing / "politi_sigtelser").mkdir(parents=True)
    (landing / "politi_sigtelser" / "s.csv").write_bytes(b"")
    ingest_all(landing, warehouse)
    return landing, warehouse


def cli_json(capsys, *argv):
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_names_columns_as_delivered_and_hints_the_closest_known_names(desk_warehouse, capsys):
    _, warehouse = desk_warehouse
    status = cli_json(capsys, "status", "--warehouse", str(warehouse))
    assert [(r["delivery_id"], r["file_name"], r["reason"]) for r in status["open_rejected_files"]] == [(2, "s.csv", "empty file")]
    assert [(g["source"], g["rule"], g["column"], g["rows"]) for g in status["open_problems_by_rule"]] == [
        ("kommune_noegletal", "missing_value", "Tæller", 1), ("kommune_noegletal", "unknown_area", "Område", 1)]
    (unknown,) = [p for p in status["open_problems"] if p["rule"] == "unknown_area"]
    assert unknown["column"] == "Område" and unknown["value"] == "Motalvej" and unknown["hint"][0] == "Motalavej"
    assert unknown["appeared_at"]
    assert main(["status", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "1 rejected file(s), 2 quarantined row(s)" in out and "Motalvej" in out and "Område" in out
    assert all(len(line) <= 80 for line in out.splitlines() if not line.startswith("status page:"))
    assert main(["status", "--warehouse", str(warehouse), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("kind,delivery_id,source")


def test_the_status_page_lists_a_large_group_in_part_and_says_how_to_see_it_all(tmp_path, monkeypatch):
    from transforms.steward import status as status_page

    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER,
                                                 *(f"2016;330;Motalvej;frivillige_18plus_andel;{n};1000" for n in range(5))])
    ingest_all(landing, warehouse)
    monkeypatch.setattr(status_page, "ROWS_SHOWN_PER_GROUP", 2)
    page = write_status_page(warehouse).read_text(encoding="utf-8")
    assert page.count("<span class=value>Motalvej</span>") == 2
    assert "The first 2 of 5 rows; the group's line above acts on all of them." in page
    assert len(read_status(warehouse).problems) == 5  # the status itself (and --format csv) keeps every row


def test_every_list_command_speaks_json(desk_warehouse, capsys):
    _, warehouse = desk_warehouse
    w = ["--warehouse", str(warehouse)]
    deliveries = cli_json(capsys, "deliveries", *w)
    assert [(d["delivery_id"], d["status"]) for d in deliveries] == [(1, "loaded_with_quarantine"), (2, "rejected")]
    listed = cli_json(capsys, "quarantine", "list", *w)
    assert [(r["line_number"], r["column"], r["rule"]) for r in listed] == [(3, "Område", "unknown_area"),
                                                                           (4, "Tæller", "missing_value")]
    shown = cli_json(capsys, "quarantine", "show", "1", "3", *w)
    assert shown["delivery"]["file_name"] == "n.csv"
    assert shown["rows"][0]["as_delivered"]["Område"] == "Motalvej"
    assert cli_json(capsys, "quarantine", "retry", *w, "--reference", str(DEFAULT_REFERENCE_DIR)) == [
        {"delivery_id": 1, "source": "kommune_noegletal", "file_name": "n.csv", "released_rows": 0, "still_open_rows": 2,
         "problems": []}]
    assert main(["quarantine", "list", *w, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("delivery_id,source,file_name,line_number,column")


def test_indicators_and_targets_speak_json_with_exact_values(tmp_path, capsys):
    from conftest import SIGTELSER_HEADER, sigtelser_year
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, "2016;330;Sydbyen;befolkning;3.000;",
                                                 "2016;330;Hele kommunen;befolkning;77.000;"])
    ingest_all(landing, warehouse)
    rows = cli_json(capsys, "indicators", "--warehouse", str(warehouse), "--level", "area")
    (row,) = [r for r in rows if r["indicator"] == "afgoerelser_pr_1000" and r["scope_id"] == "sydbyen"]
    assert row["value"] == pytest.approx(45 / 3000 * 1000)  # exact, not rounded
    targets = cli_json(capsys, "targets", "--warehouse", str(warehouse))
    assert set(targets) == {"per_plan_and_year", "latest_verdicts", "targets_without_data"}


def test_indicators_take_the_latest_year_with_data_for_the_scopes_shown(tmp_path, capsys):
    """2017 has a partial delivery (Sydbyen only): areas show 2016 for every area, not 2017 for one."""
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    lines = [NOEGLETAL_HEADER]
    for area in ("Sydbyen", "Motalavej"):
        lines += [f"2016;330;{area};befolkning;3.000;", f"2016;330;{area};frivillige_18plus_andel;100;1000"]
    lines += ["2017;330;Sydbyen;befolkning;3.000;", "2017;330;Sydbyen;frivillige_18plus_andel;120;1000"]
    land(landing, "kommune_noegletal", "n.csv", lines)
    ingest_all(landing, warehouse)
    rows = cli_json(capsys, "indicators", "--warehouse", str(warehouse), "--level", "area",
                    "--indicator", "frivillige_18plus_andel")
    assert sorted((r["scope_id"], r["year"]) for r in rows) == [("motalavej", 2016), ("sydbyen", 2016)]


@pytest.mark.parametrize("argv, said", [
    (["quarantine", "waive", "--delivery", "999", "--reason", "x"], "no delivery 999; deliveries: 1-2"),
    (["quarantine", "waive", "--delivery", "1", "--line", "99", "--reason", "x"], "no open quarantined row matches"),
    (["quarantine", "waive", "--rule", "unknown_areas", "--reason", "x"], "did you mean unknown_area"),
    (["quarantine", "waive", "--source", "politi", "--reason", "x"], "sources: boligorg_afdelinger"),
    (["quarantine", "show", "23"], "no delivery 23"),
    (["quarantine", "show", "1", "99"], "its quarantined lines: 3-4"),
    (["quarantine", "list", "--rule", "nope"], "rules: "),
    (["quarantine", "list", "--source", "nope"], "sources: "),
    (["quarantine", "list", "--delivery", "77"], "no delivery 77"),
    (["deliveries", "--source", "nope"], "sources: "),
    (["indicators", "--indicator", "afgoerelser_pr_100"], "did you mean afgoerelser_pr_1000"),
    (["targets", "--plan", "nope"], "plans: "),
])
def test_mistakes_exit_non_zero_say_what_exists_and_change_nothing(desk_warehouse, capsys, argv, said):
    _, warehouse = desk_warehouse
    before = query(warehouse, "SELECT * FROM meta.quarantine ORDER BY ALL")
    assert main([*argv, "--warehouse", str(warehouse)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1
    assert query(warehouse, "SELECT * FROM meta.quarantine ORDER BY ALL") == before


@pytest.mark.parametrize("argv", [["status"], ["deliveries"], ["quarantine", "list"], ["quarantine", "show", "1"],
                                  ["quarantine", "retry"], ["indicators"], ["targets"]])
def test_a_missing_warehouse_is_one_line(tmp_path, capsys, argv):
    assert main([*argv, "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    assert capsys.readouterr().err.startswith("boligdata: no warehouse at")


def test_retry_with_nothing_open_answers_without_prefect(desk_warehouse):
    _, warehouse = desk_warehouse
    assert main(["quarantine", "waive", "--warehouse", str(warehouse), "--source", "kommune_noegletal",
                 "--reason", "checked with the sender"]) == 0
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flows.cli", "quarantine", "retry", "--warehouse", str(warehouse)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "no open quarantined rows", done.stderr
    assert time.monotonic() - started < 2


def test_a_malformed_reference_file_stops_retry_with_one_line(desk_warehouse, capsys):
    _, warehouse = desk_warehouse
    folder = reference_for(warehouse)
    (folder / "scope_aliases.csv").write_text("alias;level\nMotalvej;area\n", encoding="utf-8")
    before = query(warehouse, "SELECT * FROM meta.quarantine ORDER BY ALL")
    assert main(["quarantine", "retry", "--warehouse", str(warehouse)]) == 2
    assert "scope_aliases.csv: missing column(s) scope_id" in capsys.readouterr().err
    assert query(warehouse, "SELECT * FROM meta.quarantine ORDER BY ALL") == before


def test_the_steward_loop_end_to_end(desk_warehouse, tmp_path, capsys):
    """Bad delivery -> status page shows it -> fixed by a corrected file, a reference fix + retry and a
    waiver -> the page shows each closed, with who and why."""
    landing, warehouse = desk_warehouse
    page = status_page_path(warehouse)
    write_status_page(warehouse)
    text = page.read_text(encoding="utf-8")
    assert "politi_sigtelser/s.csv" in text and "Motalvej" in text and "Område" in text and "Tæller" in text
    parser = _ExternalReferences()
    parser.feed(text)
    assert parser.found == [] and not parser.tags & {"script", "link", "img", "iframe"}
    assert "http://" not in text and "https://" not in text

    # 1. a corrected file under the same name closes the rejected one
    from conftest import SIGTELSER_HEADER, sigtelser_year
    land(landing, "politi_sigtelser", "s.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Sydbyen")])
    ingest_all(landing, warehouse)
    assert read_status(warehouse).rejected == []

    # 2. a reference fix in the warehouse's own folder + retry releases the unknown area
    folder = reference_for(warehouse)
    assert folder == warehouse_reference_dir(warehouse) and (folder / "scope_aliases.csv").exists()
    with open(folder / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")
    assert main(["quarantine", "retry", "--warehouse", str(warehouse)]) == 0
    assert "1 row(s) released, 1 still quarantined" in capsys.readouterr().out

    # 3. a waiver closes the rest, with who and why
    assert main(["quarantine", "waive", "--warehouse", str(warehouse), "--delivery", "1", "--line", "4",
                 "--reason", "Sydbyen did not count volunteers in 2016"]) == 0
    capsys.readouterr()
    listed = cli_json(capsys, "quarantine", "list", "--warehouse", str(warehouse), "--status", "all")
    assert {(r["line_number"], r["status"], r["reason"]) for r in listed} == {
        (3, "released", None), (4, "waived", "Sydbyen did not count volunteers in 2016")}
    assert main(["quarantine", "list", "--warehouse", str(warehouse), "--status", "waived"]) == 0
    assert "Sydbyen did not count" in capsys.readouterr().out

    status = read_status(warehouse)
    assert status.open_count == 0
    text = page.read_text(encoding="utf-8")  # refreshed by the waiver
    assert "Nothing is open" in text and "Sydbyen did not count volunteers in 2016" in text and "released" in text
    closed = {c["line_number"]: c for c in status.closed}
    assert closed[4]["resolved_by"] and closed[3]["resolved_by"]
    assert [a["action"] for a in status.actions] == ["waive", "retry"]


def test_an_alias_from_the_command_line_is_checked_recorded_and_released_by_retry(desk_warehouse, capsys):
    """`reference alias` adds a sender's spelling for an area to the warehouse's scope_aliases.csv, with
    who and when; a spelling that is known already, an id that is no area and a broken line change
    nothing and exit 2 with one line."""
    _, warehouse = desk_warehouse
    aliases = reference_for(warehouse) / "scope_aliases.csv"
    before = aliases.read_bytes()
    for argv, said in ((["Motalavej", "motalavej"], "'Motalavej' is known already: it stands for area motalavej"),
                       (["Motalvej", "atlantis"], "no area or bydel with id 'atlantis'"),
                       (["Motal;vej", "motalavej"], "without ; or"),
                       (["Motalvej", "national"], "no area or bydel with id 'national'")):
        assert main(["reference", "alias", *argv, "--warehouse", str(warehouse)]) == 2
        err = capsys.readouterr().err
        assert said in err and err.count("\n") == 1, err
    assert aliases.read_bytes() == before
    assert query(warehouse, "SELECT count(*) FROM meta.steward_actions") == [(0,)]

    assert main(["reference", "alias", " Motalvej ", "motalavej", "--warehouse", str(warehouse)]) == 0
    assert "added Motalvej;area;motalavej to" in capsys.readouterr().out
    assert aliases.read_bytes() == before + b"Motalvej;area;motalavej\n"
    assert query(warehouse, "SELECT action, target, result FROM meta.steward_actions") == [
        ("reference_edit", "scope_aliases.csv", "added Motalvej;area;motalavej")]
    assert main(["quarantine", "retry", "--warehouse", str(warehouse)]) == 0
    assert "1 row(s) released, 1 still quarantined" in capsys.readouterr().out


def test_an_alias_that_is_not_published_is_put_back_unless_the_file_changed_since(tmp_path):
    """A reference edit whose write fails afterwards (its recording, retry or publish) is undone; an edit
    someone made to the file meanwhile is never undone with it."""
    import shutil

    from transforms.reference import add_alias, undone_on_failure

    folder = tmp_path / "reference"
    shutil.copytree(DEFAULT_REFERENCE_DIR, folder)
    aliases = folder / "scope_aliases.csv"
    before = aliases.read_bytes()
    edits = []
    with pytest.raises(RuntimeError), undone_on_failure(edits):
        add_alias(folder, "Motalvej", "motalavej", edits)
        assert aliases.read_bytes() == before + b"Motalvej;area;motalavej\n"
        raise RuntimeError("the publish failed")
    assert aliases.read_bytes() == before
    edits = []
    with pytest.raises(RuntimeError), undone_on_failure(edits):
        add_alias(folder, "Motalvej", "motalavej", edits)
        with open(aliases, "a", encoding="utf-8") as by_hand:  # a steward's edit meanwhile
            by_hand.write("Ringparken Nord;area;ringparken\n")
        raise RuntimeError("the publish failed")
    assert aliases.read_bytes() == before + b"Motalvej;area;motalavej\nRingparken Nord;area;ringparken\n"


def test_the_warehouse_keeps_its_own_reference_data_and_reports_changed_defaults(tmp_path, monkeypatch, capsys):
    import transforms.reference as reference_module

    defaults = tmp_path / "defaults"
    import shutil
    shutil.copytree(DEFAULT_REFERENCE_DIR, defaults)
    monkeypatch.setattr(reference_module, "DEFAULT_REFERENCE_DIR", defaults)
    warehouse = tmp_path / "w.duckdb"
    warehouse.touch()
    folder = reference_for(warehouse)
    with open(folder / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")
    assert changed_defaults(folder) == []
    with open(defaults / "scope_aliases.csv", "a", encoding="utf-8") as aliases:  # a new release changes a default
        aliases.write("Sydbyen Slagelse;area;sydbyen\n")
    (change,) = changed_defaults(folder)
    assert change.file == "scope_aliases.csv" and change.locally_edited
    assert "Motalvej;area;motalavej" in (folder / "scope_aliases.csv").read_text(encoding="utf-8")  # not replaced
    assert main(["reference", "diff", "--warehouse", str(warehouse)]) == 0
    out = capsys.readouterr().out
    assert "+Motalvej;area;motalavej" in out and "-Sydbyen Slagelse;area;sydbyen" in out and "not applied" in out
    assert main(["reference", "adopt", "plans.csv", "--warehouse", str(warehouse)]) == 2
    assert "no changed default to adopt; changed: scope_aliases.csv" in capsys.readouterr().err
    assert main(["reference", "keep", "scope_aliases.csv", "--warehouse", str(warehouse)]) == 0
    assert changed_defaults(folder) == []


def test_a_run_after_an_alias_edit_keeps_the_alias(tmp_path, prefect_server):
    from flows.pipeline import run_pipeline

    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    land(landing, "kommune_noegletal", "n.csv", [NOEGLETAL_HEADER, "2016;330;Motalavej;befolkning;1.500;",
                                                 "2016;330;Motalvej;frivillige_18plus_andel;180;1060"])
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    folder = warehouse_reference_dir(warehouse)
    with open(folder / "scope_aliases.csv", "a", encoding="utf-8") as aliases:
        aliases.write("Motalvej;area;motalavej\n")
    land(landing, "kommune_noegletal", "m.csv", [NOEGLETAL_HEADER, "2017;330;Motalvej;befolkning;1.400;"])
    run_pipeline(landing=str(landing), warehouse=str(warehouse))
    assert "Motalvej;area;motalavej" in (folder / "scope_aliases.csv").read_text(encoding="utf-8")
    assert query(warehouse, "SELECT count(*) FROM ref.scope_aliases WHERE alias = 'Motalvej'") == [(1,)]
    assert query(warehouse, "SELECT status FROM meta.deliveries ORDER BY delivery_id") == [
        ("loaded_with_quarantine",), ("loaded",)]
    assert "Nothing is open" not in status_page_path(warehouse).read_text(encoding="utf-8")  # refreshed by the run


# --- the desk over HTTP --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def desk(desk_warehouse):
    landing, warehouse = desk_warehouse
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "flows.desk", "--warehouse", str(warehouse), "--port", str(port)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/status.json", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield base, warehouse
    finally:
        process.terminate()
        process.wait(10)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def _post(url: str, fields: dict) -> tuple[int, str]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode()), timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _token(page: str) -> str:
    return page.split('name=token value="', 1)[1].split('"', 1)[0]


def test_the_desk_shows_what_is_open_and_acts_only_with_its_token(desk):
    base, warehouse = desk
    page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    assert "Motalvej" in page and "politi_sigtelser/s.csv" in page and "Område" in page
    before = query(warehouse, "SELECT * FROM meta.quarantine ORDER BY ALL")
    assert _post(base + "/waive", {"delivery": 1, "line": 4, "reason": "no token"})[0] == 403
    assert _post(base + "/waive", {"delivery": 1, "line": 4, "reason": "bad", "token": "guess"})[0] == 403
    assert _post(base + "/retry", {})[0] == 403
    assert query(warehouse, "SELECT * FROM meta.quarantine ORDER BY ALL") == before
    token = _token(page)

    rows = urllib.request.urlopen(base + "/delivery/1", timeout=30).read().decode()
    assert "Motalvej" in rows and "frivillige_18plus_andel" in rows and "1060" in rows
    assert urllib.request.urlopen(base + "/delivery/1/raw", timeout=30).read().decode().startswith("År;Kommunekode")

    status, said = _post(base + "/waive", {"delivery": 999, "reason": "x", "token": token})
    assert status == 400 and "no delivery 999" in said
    status, _ = _post(base + "/waive", {"delivery": 1, "line": 4, "reason": "not counted in 2016", "token": token,
                                        "who": "kirsten"})
    assert status == 303
    assert query(warehouse, "SELECT status, resolved_by, note FROM meta.quarantine WHERE line_number = 4") == [
        ("waived", "kirsten", "not counted in 2016")]
    assert _post(base + "/dismiss", {"delivery": 2, "reason": "sent by mistake", "token": token})[0] == 303
    assert _post(base + "/retry", {"token": token})[0] == 303
    state = json.loads(urllib.request.urlopen(base + "/status.json", timeout=30).read())
    assert state["open_rejected_files"] == []
    assert [a["action"] for a in state["actions"]] == ["retry", "dismiss_file", "waive"]
    assert state["actions"][2]["who"] == "kirsten"
    page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    assert "not counted in 2016" in page and "sent by mistake" in page


def test_the_desk_makes_an_unknown_name_an_alias_of_a_closest_known_one_and_retries(desk):
    """An unknown area's row offers its closest known areas; picking one adds the name as delivered to
    scope_aliases.csv and checks every open row again, in one write, recorded with who."""
    base, warehouse = desk
    page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    token = _token(page)
    form = page[page.index('action="/alias"'):].split("</form>", 1)[0]
    assert 'name=alias value="Motalvej"' in form and '<option value="motalavej">Motalavej (motalavej)</option>' in form
    aliases = reference_for(warehouse) / "scope_aliases.csv"
    before = aliases.read_bytes()
    assert _post(base + "/alias", {"alias": "Motalvej", "scope": "motalavej"})[0] == 403
    status, said = _post(base + "/alias", {"alias": "Motalvej", "scope": "atlantis", "token": token})
    assert status == 400 and "no area or bydel with id 'atlantis'" in said and "nothing was changed" in said
    assert aliases.read_bytes() == before

    status, _ = _post(base + "/alias", {"alias": "Motalvej", "scope": "motalavej", "token": token, "who": "kirsten"})
    assert status == 303
    assert aliases.read_bytes() == before + b"Motalvej;area;motalavej\n"
    assert query(warehouse, "SELECT line_number, status, resolved_by FROM meta.quarantine ORDER BY 1") == [
        (3, "released", "kirsten"), (4, "open", None)]
    assert query(warehouse, "SELECT action, who, result FROM meta.steward_actions ORDER BY action_id") == [
        ("reference_edit", "kirsten", "added Motalvej;area;motalavej"),
        ("retry", "kirsten", "1 row(s) released, 1 still quarantined")]
    assert query(warehouse, "SELECT count(*) FROM marts.indicator_values WHERE scope_id = 'motalavej' "
                            "AND indicator = 'frivillige_18plus_andel'") == [(1,)]


def test_the_desk_still_shows_what_is_open_when_a_reference_file_is_broken(desk):
    base, warehouse = desk
    (reference_for(warehouse) / "scope_aliases.csv").write_text("alias;level\nMotalvej;area\n", encoding="utf-8")
    page = urllib.request.urlopen(base + "/", timeout=30).read().decode()
    assert "Motalvej" in page and "missing column(s) scope_id" in page and 'action="/alias"' not in page


def test_the_desk_records_the_name_a_steward_gave_it(desk):
    base, warehouse = desk
    token = _token(urllib.request.urlopen(base + "/", timeout=30).read().decode())
    assert _post(base + "/who", {"who": "Mette Hansen"})[0] == 403  # no token, no cookie
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(urllib.request.Request(base + "/who", data=urllib.parse.urlencode(
            {"who": "  Mette   Hansen ", "token": token}).encode()), timeout=30)
    except urllib.error.HTTPError as redirect:  # 303 back to the desk, with the name kept in the browser
        assert redirect.code == 303
        cookie = redirect.headers["set-cookie"].split(";", 1)[0]
    assert cookie == 'boligdata_steward="Mette Hansen"'
    named = {"Cookie": cookie}
    page = urllib.request.urlopen(urllib.request.Request(base + "/", headers=named), timeout=30).read().decode()
    assert "Acting as <b>Mette Hansen</b>" in page
    try:
        opener.open(urllib.request.Request(base + "/waive", headers=named, data=urllib.parse.urlencode(
            {"delivery": 1, "line": 4, "reason": "not counted", "token": token}).encode()), timeout=30)
    except urllib.error.HTTPError as redirect:
        assert redirect.code == 303
    assert query(warehouse, "SELECT resolved_by FROM meta.quarantine WHERE line_number = 4") == [("Mette Hansen",)]
    assert query(warehouse, "SELECT who FROM meta.steward_actions") == [("Mette Hansen",)]


def test_the_desk_binds_loopback_unless_told_and_given_a_token(desk_warehouse, capsys):
    from flows.desk import is_loopback, start_desk
    _, warehouse = desk_warehouse
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    with pytest.raises(ValueError, match="--desk-expose and a --desk-token"):
        start_desk(warehouse, "0.0.0.0", _free_port(), token=None, expose=True)
    with pytest.raises(ValueError, match="--desk-expose"):
        start_desk(warehouse, "0.0.0.0", _free_port(), token="t", expose=False)
    assert main(["serve", "--landing", str(warehouse.parent), "--warehouse", str(warehouse), "--desk-host", "0.0.0.0"]) == 2
    assert "only with --desk-expose and a --desk-token" in capsys.readouterr().err


def test_an_exposed_desk_needs_the_token_to_read_too(desk_warehouse):
    from starlette.testclient import TestClient

    from flows.desk import create_app
    _, warehouse = desk_warehouse
    client = TestClient(create_app(warehouse, token="s3cret", tokens_for_reads=True))
    assert client.get("/").status_code == 403
    assert client.get("/?token=s3cret").status_code == 200
    assert client.get("/").status_code == 200  # the cookie from the first visit
    assert client.post("/waive", data={"delivery": "1", "reason": "x"}).status_code == 403
