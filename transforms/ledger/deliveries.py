"""Landed files -> deliveries: which contract each file falls under, whether its bytes were seen
before, and the archive copy that is kept unchanged whatever becomes of the file."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from transforms.file_versions import file_version
from transforms.intake.personal_data import cpr_like_names
from transforms.sources import contract_for
from warehouse.files import internal_file

XLSX_MAGIC = b"PK\x03\x04"  # a zip container: XLSX
# Names a sender's tooling uses while a file is still being written.
INCOMPLETE_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial")


@dataclass(frozen=True)
class Delivery:
    """One landed file on its way through the pipeline; later steps fill in the rest."""

    delivery_id: int
    source: str
    file_name: str  # below the source folder
    path: Path
    sha256: str
    size_bytes: int
    received_at: dt.datetime
    status: str | None = None  # decided early only for rejected and duplicate files
    reason: str | None = None
    encoding: str | None = None
    archive_path: str | None = None
    # Once read, the rows wait on disk between steps (transforms/intake/batches.py names the parts).
    spilled: Path | None = None  # <spill dir>/<id>, to which spill_path adds .<part>.parquet; shared by files staged together
    rows_read: int | None = None
    readable: bool = True  # False for an entry that is not a regular file (never opened, never archived)
    duplicate_of: int | None = None  # the delivery whose bytes these are
    warnings: str | None = None  # what intake did not read, for the steward (e.g. columns the contract does not know)

    def spill_path(self, part: str) -> Path:
        return self.spilled.with_name(f"{self.spilled.name}.{part}.parquet")

    def rejected(self, reason: str) -> Delivery:
        return replace(self, status="rejected", reason=reason)

    @property
    def is_settled(self) -> bool:
        """Nothing left to read or validate."""
        return self.status in ("rejected", "duplicate")


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read once per version of the file (transforms/file_versions.py): at national
    scale every look at the landing would otherwise read every landed file again, 0.25 s of CPU."""
    version = file_version(path)
    return _sha256_of_bytes(str(path)) if version is None else _sha256_of_version(str(path), version)


@functools.lru_cache(maxsize=1 << 16)
def _sha256_of_version(path: str, version: tuple[int, ...]) -> str:
    return _sha256_of_bytes(path)


def _sha256_of_bytes(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_landed_files(landing_dir: Path) -> None:
    """Read every landed file's SHA-256 into sha256_of's cache, so that the run's plan finds them there.
    `boligdata run` calls it in a thread while Prefect and GX are imported and Prefect's server starts
    (hashlib lets go of the GIL, and the imports keep only one core busy): 0.8 s of a national first run's
    262 MB off its critical path. A file that changes meanwhile is a new version and hashed again. The
    cache is keyed by path: the folder is resolved, as the run resolves it."""
    with contextlib.suppress(OSError):  # a file gone or unreadable meanwhile: the plan meets it and says so
        for path in _landed_entries(Path(landing_dir).resolve())[0]:
            with contextlib.suppress(OSError):
                sha256_of(path)


def _landed_entries(landing_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(complete regular files, entries that are not regular files with why) below the landing folder.
    Links are never followed, so nothing outside the landing folder is read; a named pipe is never
    opened (it would block)."""
    landing_dir = Path(landing_dir)
    files, odd = [], []
    for folder, subfolders, names in os.walk(landing_dir, followlinks=False):
        folder = Path(folder)
        for name in [*subfolders, *names]:
            path = folder / name
            relative = path.relative_to(landing_dir)
            if any(part.startswith((".", "~")) for part in relative.parts) or name.endswith(INCOMPLETE_SUFFIXES):
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                odd.append((path, "a symbolic link: not followed (nothing outside the landing folder is read)"))
            elif stat.S_ISREG(mode):
                files.append(path)
            elif not stat.S_ISDIR(mode):
                odd.append((path, "not a regular file (a named pipe, socket or device): not read"))
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, str(p))), sorted(odd)


def landed_files(landing_dir: Path) -> list[Path]:
    """Complete regular files below the landing folder, oldest first (the order corrections apply in)."""
    return _landed_entries(landing_dir)[0]


# Deliveries whose rows went into staging (a superseded one did, until a correction replaced them)
LOADED_STATUSES = ("loaded", "loaded_with_quarantine", "superseded")


@dataclass(frozen=True)
class LedgerSnapshot:
    next_delivery_id: int
    seen: frozenset[tuple[str, str, str]]  # (source, file_name, sha256) already recorded
    # (source, sha256) -> delivery_id of a delivery whose rows were loaded. Per source: the same bytes in
    # another source folder fall under another contract (often a file first dropped in the wrong folder),
    # and a copy's original is then always read before it (a run takes a source's files in landing order)
    loaded_sha: dict[tuple[str, str], int]
    model_fingerprint: str | None = None  # what the published marts were built from (None: stale)
    # The last build of the marts: its fingerprint, and the deliveries loaded by runs since (runs that
    # ingested without building the marts, as the served ingestion deployment does)
    marts_fingerprint: str | None = None
    loaded_since_marts: tuple[int, ...] = ()

    @classmethod
    def read(cls, warehouse: Path) -> LedgerSnapshot:
        """The warehouse's ledger, from its internal file (read-only: a reader is no obstacle to anyone)."""
        warehouse = internal_file(warehouse)
        if not warehouse.exists():
            return cls(1, frozenset(), {})
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            has_ledger = conn.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' AND table_name = 'runs'"
            ).fetchall()[0][0]
            if not has_ledger:
                return cls(1, frozenset(), {})
            rows = conn.execute("SELECT delivery_id, source, file_name, sha256, status FROM meta.deliveries").fetchall()
            fingerprint = conn.execute(
                "SELECT model_fingerprint FROM meta.runs ORDER BY finished_at DESC LIMIT 1").fetchall()
            marts_fingerprint, loaded_since = conn.execute("""
                WITH built AS (SELECT model_fingerprint, finished_at FROM meta.runs WHERE model_fingerprint IS NOT NULL
                               ORDER BY finished_at DESC LIMIT 1)
                SELECT (SELECT model_fingerprint FROM built),
                       (SELECT list(delivery_id ORDER BY delivery_id) FROM meta.deliveries
                        WHERE list_contains($loaded, status) AND run_id IN
                              (SELECT run_id FROM meta.runs WHERE finished_at > coalesce((SELECT finished_at FROM built),
                                                                                          TIMESTAMP '0001-01-01')))
            """, {"loaded": list(LOADED_STATUSES)}).fetchall()[0]
        loaded = {(source, sha): did for did, source, _, sha, status in rows if status in LOADED_STATUSES}
        return cls(
            next_delivery_id=max((r[0] for r in rows), default=0) + 1,
            seen=frozenset((source, name, sha) for _, source, name, sha, _ in rows),
            loaded_sha=loaded,
            model_fingerprint=fingerprint[0][0] if fingerprint else None,
            marts_fingerprint=marts_fingerprint,
            loaded_since_marts=tuple(loaded_since or ()),
        )


def _source_and_name(landing_dir: Path, path: Path) -> tuple[str, str]:
    """(source folder, file name below it); a file straight under landing has no source."""
    relative = path.relative_to(landing_dir)
    if len(relative.parts) > 1:
        return relative.parts[0], str(Path(*relative.parts[1:]))
    return "", relative.name


def plan_deliveries(landing_dir: Path, ledger: LedgerSnapshot, now: dt.datetime | None = None) -> list[Delivery]:
    """The files not yet in the ledger, each with its delivery id, in load order.

    A file already recorded under the same name with the same bytes is not a new landing and is
    skipped; the same bytes under another name are a `duplicate` delivery; an unknown folder is
    `rejected` here, before any parsing."""
    landing_dir = Path(landing_dir)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    next_id = ledger.next_delivery_id
    loaded_sha = dict(ledger.loaded_sha)
    planned = []
    files, odd_entries = _landed_entries(landing_dir)
    for path, why in odd_entries:  # recorded, never read: their "hash" is of what the entry is
        source, file_name = _source_and_name(landing_dir, path)
        sha = hashlib.sha256(f"{why}|{os.readlink(path) if path.is_symlink() else ''}".encode()).hexdigest()
        if (source, file_name, sha) not in ledger.seen:
            planned.append(Delivery(next_id, source, file_name, path, sha, 0, now, readable=False).rejected(why))
            next_id += 1
    names = {path: _source_and_name(landing_dir, path) for path in files}
    named_persons = cpr_like_names([f"{source}/{file_name}" for source, file_name in names.values()])
    for path in files:
        source, file_name = names[path]
        named_person = f"{source}/{file_name}" in named_persons
        if named_person:  # a name is screened like content: the ledger keeps it with its digits masked
            source, file_name = (re.sub(r"\d", "#", part) for part in (source, file_name))
        sha = sha256_of(path)
        if (source, file_name, sha) in ledger.seen:
            continue
        delivery = Delivery(next_id, source, file_name, path, sha, path.stat().st_size, now)
        contract = contract_for(source)
        if named_person:
            delivery = delivery.rejected("the file or folder name holds a CPR-like number (personal data); it is "
                                         "recorded with its digits masked: rename the file and deliver it again")
        elif not source:
            delivery = delivery.rejected("file is not inside a source folder (landing/<source>/<file>)")
        elif contract is None:
            delivery = delivery.rejected(f"unknown source folder {source!r}")
        elif "xlsx" not in contract.formats and _is_xlsx(path):  # its format, not its likeness to another file
            delivery = delivery.rejected(f"XLSX is not accepted for {source}; deliver ;-separated CSV")
        elif (source, sha) in loaded_sha:
            original = loaded_sha[source, sha]
            delivery = replace(delivery, status="duplicate", duplicate_of=original, reason=f"same bytes as delivery {original}")
        else:
            loaded_sha[source, sha] = next_id  # a second copy in this same run is a duplicate of this one
        planned.append(delivery)
        next_id += 1
    return planned


def _is_xlsx(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == XLSX_MAGIC


def archive_raw_file(delivery: Delivery, archive_dir: Path) -> Delivery:
    """Keep the file's bytes unchanged under their hash before anything else happens to them."""
    if not delivery.readable:
        return delivery
    suffix = "".join(Path(delivery.file_name).suffixes[-1:]).lower()
    target = Path(archive_dir) / delivery.sha256[:2] / f"{delivery.sha256}{suffix}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".incoming")
        shutil.copyfile(delivery.path, partial)
        partial.replace(target)
    return replace(delivery, archive_path=str(target))
