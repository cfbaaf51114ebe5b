"""A bounded on-disk buffer of code-log records: JSON lines in segment files, oldest shipped first.

Records are appended to ``current.jsonl``; a segment is sealed (renamed ``seg-<n>.jsonl``) when it
holds ``segment_records`` records or when the shipper asks for one. A sealed segment is removed only
after the service acknowledged it, so a record survives the service's or the hub's restarts, and the
server's own (the buffer lives in the session's /tmp). Past ``max_bytes`` the oldest sealed segments
are dropped, and counted. Only one thread (the server's event loop) uses a buffer.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

_SEG = re.compile(r"^seg-(\d{12})\.jsonl$")


def new_record_id(prefix: str) -> str:
    """Unique within the session, assigned before the record is buffered: redelivery keeps its id."""
    return f"{prefix}-{uuid.uuid4().hex}"


class Buffer:
    def __init__(self, path: str | os.PathLike, *, max_bytes: int = 32 << 20, segment_records: int = 200):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.max_bytes, self.segment_records = max_bytes, segment_records
        self.dropped = 0
        self._current = self.path / "current.jsonl"
        self._count = self._lines(self._current)
        seqs = [int(m.group(1)) for p in self.path.iterdir() if (m := _SEG.match(p.name))]
        self._next = max(seqs, default=0) + 1

    @staticmethod
    def _lines(p: Path) -> int:
        try:
            with p.open("rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._current.open("a", encoding="utf-8") as f:
            f.write(line)
        self._count += 1
        if self._count >= self.segment_records:
            self.seal()
        self._bound()

    def seal(self) -> Path | None:
        """Close the current segment (if it holds anything) so it can be shipped."""
        if self._count == 0:
            return None
        target = self.path / f"seg-{self._next:012d}.jsonl"
        self._next += 1
        os.replace(self._current, target)
        self._count = 0
        return target

    def sealed(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if _SEG.match(p.name))

    def oldest(self) -> tuple[Path, list[dict]] | None:
        """The oldest sealed segment and its records (sealing the current one when none is)."""
        segs = self.sealed() or ([self.seal()] if self._count else [])
        for seg in segs:
            records = []
            with seg.open(encoding="utf-8") as f:
                for line in f:
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue  # a line cut short by a crash mid-write: the rest still ships
            if records:
                return seg, records
            seg.unlink(missing_ok=True)
        return None

    def done(self, segment: Path) -> None:
        """The service has the segment's records."""
        segment.unlink(missing_ok=True)

    def pending(self) -> int:
        return self._count + sum(self._lines(p) for p in self.sealed())

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def _bound(self) -> None:
        while self.size() > self.max_bytes:
            segs = self.sealed()
            if not segs:
                return
            self.dropped += self._lines(segs[0])
            segs[0].unlink(missing_ok=True)
