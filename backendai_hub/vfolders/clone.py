"""Cloning a folder: admission (one transaction), the copy on a thread with progress, and its settling."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import validation as V
from ..errors import Conflict, NotFound
from ..models import VFolder, VFolderStatus
from . import fields as FL
from . import files
from . import permissions as A
from .folders import create, to_dict
from .lookup import find
from .storage import UPLOAD_DIR, StorageHosts, walk

log = logging.getLogger(__name__)

# POST vfolders/<ref>/clone checks everything and creates the new folder (status cloning) in one
# transaction (start_clone), then a thread copies the files, reporting bytes and files as it goes,
# and marks the folder ready, or, when the copy fails, removes the new folder (the source is never
# touched). Progress lives in the service process (CloneTasks): our API answers GET tasks/<id>; the
# Backend.AI client follows the same task as a bgtask event stream. A service that stops mid-copy
# leaves a cloning folder behind; drop_interrupted_clones removes those when the service starts
# again, and the user clones again.

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


# -- admission and settling -------------------------------------------------------------------------

@dataclass(frozen=True)
class CloneJob:
    """What :func:`start_clone` admitted: the copy still to be done."""

    source: str
    target: str
    target_id: str
    src_path: str
    dst_path: str
    total_bytes: int
    total_files: int
    folder: dict  # the new folder (status cloning), as our API shows it


def start_clone(s: Session, storage: StorageHosts, who: A.SubjectLike, ref: Any, data: Mapping[str, Any]) -> CloneJob:
    """Check a clone of a cloneable folder (or one the caller manages) into a new folder of the caller's
    own, and create that folder with status ``cloning``; the copy itself is :func:`copy_tree`."""
    V.check_unknown(data, FL.CLONE)  # the values are create's to parse
    src, _ = find(s, who, ref, "clone")
    src_path = storage.ready_path(src.host, src.id)
    used, count = _copied_size(src_path)
    dst, acc = create(s, storage, who, {"usage_mode": src.usage_mode.value, **data})
    if dst.quota is not None and used > dst.quota:
        raise Conflict(f"vfolder {src.name!r} holds {used} bytes, more than the new folder's quota "
                       f"{dst.quota}", field="quota")
    try:
        dst_path = storage.ready_path(dst.host, dst.id)
        free = storage.free_bytes(dst.host, dst.id)
        if free is not None and used > free:
            raise Conflict(f"vfolder {src.name!r} holds {used} bytes; storage host {dst.host!r} has {free} free",
                           field="host")
    except Exception:
        storage.destroy(dst.host, dst.id)  # the transaction rolls the row back; the directory goes too
        raise
    dst.status = VFolderStatus.cloning
    return CloneJob(source=src.name, target=dst.name, target_id=dst.id, src_path=src_path, dst_path=dst_path,
                    total_bytes=used, total_files=count, folder=to_dict(dst, acc))


def settle_clone(s: Session, storage: StorageHosts, vfid: str, ok: bool) -> None:
    """The end of a clone: the folder is ready, or (the copy failed) gone with its files."""
    vf = s.get(VFolder, vfid)
    if vf is None or vf.status != VFolderStatus.cloning:
        return
    if ok:
        vf.status = VFolderStatus.ready
        return
    host = vf.host
    s.delete(vf)
    s.flush()
    storage.destroy(host, vfid)


def drop_interrupted_clones(s: Session, storage: StorageHosts) -> list[str]:
    """Folders left ``cloning`` by a service that stopped mid-copy: removed (their sources are intact)."""
    gone = []
    for vf in s.scalars(select(VFolder).where(VFolder.status == VFolderStatus.cloning)):
        gone.append(vf.name)
        settle_clone(s, storage, vf.id, ok=False)
    return gone


def _copied_size(src: str) -> tuple[int, int]:
    """(bytes, files) a clone copies: regular files, not partial uploads."""
    size = count = 0
    uploads = os.path.join(src, UPLOAD_DIR)
    for entry in walk(src):
        if entry.path == uploads or entry.path.startswith(uploads + os.sep):
            continue
        if entry.is_file(follow_symlinks=False):
            try:
                size += entry.stat(follow_symlinks=False).st_size
                count += 1
            except OSError:
                continue
    return size, count


def copy_tree(storage: StorageHosts, src: str, dst: str,
              progress: Callable[[int, str], None] | None = None) -> None:
    """Copy a folder's files into a new folder, owned by the session user (files.copy_tree: nothing
    a session swaps in meanwhile is followed)."""
    owned = os.geteuid() == 0
    files.copy_tree(src, dst, uid=storage.uid if owned else None, gid=storage.gid if owned else None,
                    progress=progress)
