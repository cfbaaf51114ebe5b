"""Cloning in the background, with progress.

``POST vfolders/<ref>/clone`` checks everything and creates the new folder (status ``cloning``) in
one transaction (:func:`ops.start_clone`), then a thread copies the files, reporting bytes and
files as it goes, and marks the folder ``ready`` — or, when the copy fails, removes the new folder
(the source is never touched). Progress lives in the service process (:class:`CloneTasks`): our API
answers ``GET tasks/<id>``; the Backend.AI client follows the same task as a ``bgtask`` event
stream. A service that stops mid-copy leaves a ``cloning`` folder behind; :func:`ops.drop_interrupted_clones`
removes those when the service starts again, and the user clones again.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

from ..errors import NotFound

log = logging.getLogger(__name__)

RUNNING, DONE, FAILED = "running", "done", "failed"
KEEP_FINISHED = 3600.0  # seconds a finished task stays readable


@dataclass
class CloneTask:
    id: str
    user: str  # who started it: the only one who may watch it
    source: str  # vfolder names, for messages
    target: str
    target_id: str
    total_bytes: int
    total_files: int
    copied_bytes: int = 0
    copied_files: int = 0
    status: str = RUNNING
    message: str = ""
    finished_at: float | None = None
    version: int = 0  # bumped on every change, so watchers can tell
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def advance(self, nbytes: int, path: str) -> None:
        with self._lock:
            self.copied_bytes += nbytes
            self.copied_files += 1
            self.message = f"copied {path}"
            self.version += 1

    def finish(self, ok: bool, message: str) -> None:
        with self._lock:
            self.status, self.message, self.finished_at = (DONE if ok else FAILED), message, time.time()
            self.version += 1

    def to_dict(self) -> dict:
        with self._lock:
            return {"id": self.id, "kind": "vfolder-clone", "status": self.status, "message": self.message,
                    "source": self.source, "vfolder": self.target, "vfolder_id": self.target_id,
                    "total_bytes": self.total_bytes, "copied_bytes": self.copied_bytes,
                    "total_files": self.total_files, "copied_files": self.copied_files}


class CloneTasks:
    """The clones of this service process."""

    def __init__(self):
        self._tasks: dict[str, CloneTask] = {}
        self._lock = threading.Lock()

    def start(self, *, user: str, source: str, target: str, target_id: str, total_bytes: int, total_files: int,
              copy: Callable[[CloneTask], None], settle: Callable[[CloneTask, bool], None]) -> CloneTask:
        """Run ``copy(task)`` on a thread, then ``settle(task, ok)`` (which updates the database)."""
        task = CloneTask(id=str(uuid.uuid4()), user=user, source=source, target=target, target_id=target_id,
                         total_bytes=total_bytes, total_files=total_files)
        with self._lock:
            self._forget_old()
            self._tasks[task.id] = task

        def run():
            ok, message = True, f"vfolder {source!r} cloned into {target!r}"
            try:
                copy(task)
            except Exception as e:  # noqa: BLE001 - any failure ends the task with its reason
                ok, message = False, f"cloning vfolder {source!r} failed: {getattr(e, 'strerror', None) or e}"
                log.warning("%s", message)
            try:
                settle(task, ok)
            except Exception as e:  # noqa: BLE001
                ok, message = False, f"cloning vfolder {source!r} failed: {e}"
                log.exception("settling clone %s", task.id)
            task.finish(ok, message)

        threading.Thread(target=run, name=f"clone-{task.id[:8]}", daemon=True).start()
        return task

    def get(self, task_id: str, user: str) -> CloneTask:
        task = self._tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None or task.user != user:
            raise NotFound(f"unknown task {task_id!r}", field="task")
        return task

    def _forget_old(self) -> None:
        now = time.time()
        for tid in [t.id for t in self._tasks.values() if t.finished_at and now - t.finished_at > KEEP_FINISHED]:
            del self._tasks[tid]
