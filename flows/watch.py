"""Which landed files to announce: complete ones (unchanged between two looks), not yet in the ledger,
not announced before. The announced set is kept in a small JSON file, so a restarted watcher does not
announce a file twice."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from transforms.ledger.deliveries import LedgerSnapshot, landed_files, sha256_of


@dataclass
class LandingWatcher:
    landing: Path
    warehouse: Path
    state_file: Path
    _last_seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (size, mtime_ns) at the last look
    _announced: set[str] = field(default_factory=set)  # "<path>|<sha256>"

    def __post_init__(self):
        self.landing = Path(self.landing).resolve()
        if self.state_file.exists():
            self._announced = set(json.loads(self.state_file.read_text(encoding="utf-8")))

    def _in_ledger(self, ledger: LedgerSnapshot, path: Path, sha: str) -> bool:
        relative = path.relative_to(self.landing)
        source, name = (relative.parts[0], str(Path(*relative.parts[1:]))) if len(relative.parts) > 1 else ("", relative.name)
        return (source, name, sha) in ledger.seen

    def poll(self) -> list[Path]:
        """Files that became complete since the last look and are new to the ledger and to this watcher."""
        ready, looked_at = [], {}
        ledger = None
        for path in landed_files(self.landing):
            stat = path.stat()
            looked_at[str(path)] = (stat.st_size, stat.st_mtime_ns)
            if self._last_seen.get(str(path)) != looked_at[str(path)]:
                continue  # new or still growing: look again next time
            sha = sha256_of(path)
            key = f"{path}|{sha}"
            if key in self._announced:
                continue
            ledger = ledger or LedgerSnapshot.read(self.warehouse)
            if not self._in_ledger(ledger, path, sha):
                ready.append(path)
            self._announced.add(key)
        self._last_seen = looked_at
        if ready:
            self._save()
        return ready

    def _save(self) -> None:
        partial = self.state_file.with_name(self.state_file.name + ".tmp")
        partial.write_text(json.dumps(sorted(self._announced)), encoding="utf-8")
        partial.replace(self.state_file)
