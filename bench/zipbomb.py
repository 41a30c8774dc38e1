"""Peak memory of rejecting an XLSX zip bomb (issue: a 527 KB file whose sheet inflates to 512 MiB took
15.2 GB and 93 s before it was rejected). Builds the bomb, reads it in a fresh process with the default
limits, and records the outcome, the time and the process's peak RSS.

    .venv/bin/python bench/zipbomb.py      # about 10 s; writes bench/results/zipbomb.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from openpyxl import Workbook

RESULTS = Path(__file__).parent / "results" / "zipbomb.json"
INFLATED = 512 << 20
CHILD = """
import resource, sys, time
from pathlib import Path
from transforms.intake.read import RejectedFile, read_text_rows
from transforms.sources import contract_for
started = time.perf_counter()
try:
    read_text_rows(Path(sys.argv[1]), contract_for("boligorg_afdelinger"))
    outcome = "read"
except RejectedFile as rejection:
    outcome = str(rejection)
print(outcome)
print(time.perf_counter() - started)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def build_bomb(path: Path) -> None:
    book = Workbook()
    book.active.append(["Boligorganisation", "Afdeling", "År"])
    book.save(path)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as workbook:
        with workbook.open("xl/worksheets/sheet2.xml", "w", force_zip64=True) as sheet:
            block = b"<row><c><v>0</v></c></row>" * 4096
            for _ in range(INFLATED // len(block)):
                sheet.write(block)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        bomb = Path(folder) / "bomb.xlsx"
        build_bomb(bomb)
        size = bomb.stat().st_size
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(bomb)], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        outcome, read_s, rss_kib = out.stdout.splitlines()[-3:]
    result = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "file_bytes": size, "inflates_to_bytes": INFLATED,
              "outcome": outcome, "read_s": round(float(read_s), 3),
              "process_s": round(time.perf_counter() - started, 2), "peak_rss_mib": round(int(rss_kib) / 1024, 1)}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
