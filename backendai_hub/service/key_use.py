"""When each keypair was last used: noted in memory per signed request and written to ``keypairs.last_used``
every few seconds in one transaction (a write per request would double a signed request's cost)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import or_, update

from ..db import Database
from ..models import KeyPair

log = logging.getLogger("backendai_hub.key_use")

FLUSH_SECONDS = 30.0  # how stale ``last_used`` may be: coarse on purpose (Backend.AI shows it to the day)


class KeyUse:
    """Access key -> the latest time it signed a request that was not refused as unauthenticated."""

    def __init__(self):
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()  # noted on the event loop, written from an executor thread

    def seen(self, access_key: str, at: datetime) -> None:
        with self._lock:
            if access_key not in self._seen or at > self._seen[access_key]:
                self._seen[access_key] = at

    def pending(self) -> int:
        with self._lock:
            return len(self._seen)

    def flush(self, db: Database) -> int:
        """Write what was noted (never moving a ``last_used`` back); on failure keep it for the next
        flush. Returns how many keys were written."""
        with self._lock:
            batch, self._seen = self._seen, {}
        if not batch:
            return 0
        try:
            with db.session() as s:
                for key, at in sorted(batch.items()):  # one order for every writer: no deadlock
                    s.execute(update(KeyPair).where(KeyPair.access_key == key,
                                                    or_(KeyPair.last_used.is_(None), KeyPair.last_used < at))
                              .values(last_used=at).execution_options(synchronize_session=False))
        except Exception:
            for key, at in batch.items():
                self.seen(key, at)
            log.warning("Could not record the last use of %d keypair(s); trying again later", len(batch),
                        exc_info=True)
            return 0
        return len(batch)
