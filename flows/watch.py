"""Which landed files to announce, and when: complete ones (unchanged between two looks), not yet in the
ledger, not announced before; all at once, as one burst, once the landing has settled (no file new or
still growing at this look) and no ingestion is pending (a run that starts later takes them in anyway;
files a running one took in are in the ledger when it has finished, and are not announced). The
announced set is kept in a small JSON file, so a restarted watcher does not announce a file twice;
files held back are not in it until they are announced."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from transforms.file_versions import write_whole
from transforms.ledger.deliveries import LedgerSnapshot, landed_files, sha256_of


@dataclass
class LandingWatcher:
    landing: Path
    warehouse: Path
    state_file: Path
    max_hold_seconds: float = 30.0  # announce held files after this long even if the landing never settles
    _last_seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns) at the last look
    _announced: set[str] = field(default_factory=set)  # "<path>|<sha256>"
    _held: dict[Path, str] = field(default_factory=dict)  # complete new files not yet announced -> their key
    _held_since: float | None = None

    def __post_init__(self):
        self.landing = Path(self.landing).resolve()
        if self.state_file.exists():
            self._announced = set(json.loads(self.state_file.read_text(encoding="utf-8")))

    def _in_ledger(self, ledger: LedgerSnapshot, path: Path, sha: str) -> bool:
        relative = path.relative_to(self.landing)
        source, name = (relative.parts[0], str(Path(*relative.parts[1:]))) if len(relative.parts) > 1 else ("", relative.name)
        return (source, name, sha) in ledger.seen

    def poll(self, hold: bool = False) -> list[Path]:
        """The complete new files to announce now, as one burst: none while the landing is unsettled
        (a file new or still growing) or while HOLD (an ingestion is pending), unless files have been
        held for max_hold_seconds."""
        looked_at: dict[str, tuple[int, int]] = {}
        unsettled = False
        ledger = None
        for path in landed_files(self.landing):
            stat = path.stat()
            looked_at[str(path)] = (stat.st_size, stat.st_mtime_ns)
            if self._last_seen.get(str(path)) != looked_at[str(path)]:
                unsettled = True
                self._held.pop(path, None)  # rewritten while held: its bytes are looked at again
                continue  # new or still growing: look again next time
            if path in self._held:
                continue
            sha = sha256_of(path)
            key = f"{path}|{sha}"
            if key in self._announced:
                continue
            ledger = ledger or LedgerSnapshot.read(self.warehouse)
            if self._in_ledger(ledger, path, sha):
                self._announced.add(key)
            else:
                self._held[path] = key
        self._last_seen = looked_at
        for path in [p for p in self._held if str(p) not in looked_at]:
            del self._held[path]  # gone (moved away or renamed) before it was announced
        if not self._held:
            self._held_since = None
            return []
        self._held_since = self._held_since or time.monotonic()
        if (unsettled or hold) and time.monotonic() - self._held_since < self.max_hold_seconds:
            return []
        ledger = LedgerSnapshot.read(self.warehouse)  # a run may have taken some in while they were held
        ready = []
        for path, key in self._held.items():
            if not self._in_ledger(ledger, path, key.rsplit("|", 1)[1]):
                ready.append(path)
            self._announced.add(key)
        self._held, self._held_since = {}, None
        self._save()
        return ready

    def _save(self) -> None:
        write_whole(self.state_file, json.dumps(sorted(self._announced)).encode("utf-8"))
