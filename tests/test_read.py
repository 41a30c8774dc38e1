import polars as pl
import pytest
from conftest import NOEGLETAL_HEADER, SIGTELSER_HEADER, sigtelser_year, write_extract

from transforms.intake.read import RejectedFile, detect_encoding, read_text_rows
from transforms.sources import contract_for

SIGTELSER = contract_for("politi_sigtelser")
NOEGLETAL = contract_for("kommune_noegletal")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("Skælskør".encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + "Skælskør".encode("utf-8"), "utf-8-sig"),
        ("Skælskør – €".encode("cp1252"), "cp1252"),
        (b"Sk\xe6lsk\xf8r \x81", "iso-8859-1"),  # 0x81 is undefined in Windows-1252
        (b"plain ascii", "utf-8"),
    ],
)
def test_encoding_is_detected_from_the_bytes(data, expected):
    assert detect_encoding(data) == expected


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", False), ("utf-8", True), ("cp1252", False), ("latin-1", False)])
def test_danish_letters_survive_every_encoding(tmp_path, encoding, bom):
    path = write_extract(tmp_path / "f.csv", [SIGTELSER_HEADER, *sigtelser_year(2016, "Skælskør")], encoding, bom)
    rows = read_text_rows(path, SIGTELSER)
    assert rows.frame["omraade"].to_list() == ["Skælskør"] * 4
    assert rows.frame["lovomraade"][1] == "Våbenloven"
    assert rows.frame.columns[0] == "line_number"
    assert rows.frame["line_number"].to_list() == [2, 3, 4, 5]


def test_headers_match_case_and_whitespace_insensitively_and_by_alias(tmp_path):
    header = "  år ;KOMMUNEKODE;omraade;Lovomraade; Afgoerelser ;sigtelser;Sigtede;Sigtede 15-29 aar"
    path = write_extract(tmp_path / "f.csv", [header, *sigtelser_year(2016, "Sydbyen")])
    frame = read_text_rows(path, SIGTELSER).frame
    assert frame.columns == ["line_number", *(c.name for c in SIGTELSER.columns)]
    assert frame["afgoerelser"].to_list() == ["30", "5", "10", "45"]


def test_columns_the_contract_does_not_know_are_not_kept_and_are_named(tmp_path):
    path = write_extract(tmp_path / "f.csv", [NOEGLETAL_HEADER + ";Kommentar", "2016;330;Sydbyen;befolkning;1350;;ok"])
    rows = read_text_rows(path, NOEGLETAL)
    assert "Kommentar" not in rows.frame.columns
    assert rows.warnings == ("not loaded, the contract does not know them: column 'Kommentar'",)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"  \r\n\r\n", "empty file"),
        (b"\x00\x01\x02binary\x00garbage\xff\xfe", "not a text file"),
        (SIGTELSER_HEADER.encode() + b"\r\n", "no data rows"),
        ("År;Kommunekode;Område;Lovområde;Afgørelser\r\n2016;330;Sydbyen;I alt;4\r\n".encode(),
         "missing required column(s): Sigtelser, Sigtede, Sigtede 15-29 år"),
        ("År;Aar;Kommunekode\r\n2016;2016;330\r\n".encode(), "column 'År' appears twice"),
    ],
)
def test_unusable_files_are_rejected_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(RejectedFile, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_text_rows(path, SIGTELSER)


def _write_xlsx(path, rows):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.create_sheet("ignored").append(["not", "read"])
    book.save(path)
    return path


def test_xlsx_first_sheet_is_read_where_the_contract_allows_it(tmp_path):
    path = _write_xlsx(tmp_path / "n.xlsx", [
        ["År", "Kommunekode", "Område", "Indikator", "Tæller", "Nævner"],
        [2016, 330, "Sydbyen", "befolkning", 1350, None],
        [2016, 330, "Sydbyen", "karakter_9kl_gns", 126.8, 24],
    ])
    rows = read_text_rows(path, NOEGLETAL)
    assert rows.encoding == "xlsx"
    assert rows.frame["line_number"].to_list() == [2, 3]
    assert rows.frame["omraade"].to_list() == ["Sydbyen", "Sydbyen"]
    assert rows.frame["taeller"][1] in ("126.8", "126.80")
    assert rows.frame["naevner"][0] is None


def test_xlsx_is_rejected_where_the_contract_wants_csv(tmp_path):
    path = _write_xlsx(tmp_path / "s.xlsx", [SIGTELSER_HEADER.split(";")])
    with pytest.raises(RejectedFile, match="XLSX is not accepted for politi_sigtelser"):
        read_text_rows(path, SIGTELSER)


def test_a_ragged_csv_is_rejected_not_half_read(tmp_path):
    path = write_extract(tmp_path / "f.csv", [NOEGLETAL_HEADER, "2016;330;Sydbyen;befolkning;1350;;extra;cells"])
    with pytest.raises(RejectedFile, match="unreadable CSV"):
        read_text_rows(path, NOEGLETAL)


def test_text_is_kept_exactly_as_delivered(tmp_path):
    path = write_extract(tmp_path / "f.csv", [NOEGLETAL_HEADER, "2016;330; Sydbyen ;befolkning;1.350;.."])
    frame = read_text_rows(path, NOEGLETAL).frame
    assert frame.row(0, named=True) == {
        "line_number": 2, "aar": "2016", "kommunekode": "330", "omraade": " Sydbyen ",
        "indikator": "befolkning", "taeller": "1.350", "naevner": "..",
    }
    assert frame.schema["taeller"] == pl.Utf8
