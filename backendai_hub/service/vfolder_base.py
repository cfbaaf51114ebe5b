"""What every vfolder handler shares: the storage, folders found with their host permission, query flags, clones."""

from __future__ import annotations

from ..errors import InvalidInput
from ..vfolders import clone, lookup
from ..vfolders.clone import CloneTask, CloneTasks
from ..vfolders.storage import StorageHosts
from .base import APIHandler
from .routes import Op

CONFLICT = "duplicate, conflicting, or in the trash"


def op(**kw) -> Op:
    """An operation of the vfolder API: each may also answer 409 (a name taken, a folder in the trash)."""
    return Op(errors={"409": CONFLICT, **kw.pop("errors", {})}, **kw)


def flag(value: str | None, field: str) -> bool:
    """A true-or-false query argument (absent: false)."""
    if value is None or value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise InvalidInput(f"{field}: {value!r} is not true or false", field=field)


class VFolderBase(APIHandler):
    # the storage-host permission every folder this handler touches needs (upload-file, download-file)
    host_perm: str | None = None
    session_token_ok = True  # the JupyterLab sidebar calls these with its session's server token

    @property
    def storage(self) -> StorageHosts:
        return self.settings.get("vfolder_storage") or StorageHosts.instance()

    def flag(self, name: str) -> bool:
        return flag(self.get_query_argument(name, None), name)

    def root_for(self, s, ref: str, op: str):
        """(folder, the caller's access, its root directory) of ``ref``, checked for ``op``."""
        vf, acc = lookup.find(s, self.principal, ref, op, self.host_perm)
        return vf, acc, self.storage.ready_path(vf.host, vf.id)

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    @property
    def clone_tasks(self) -> CloneTasks:
        return self.settings.setdefault("clone_tasks", CloneTasks())

    async def start_clone(self, ref: str, data: dict) -> tuple[clone.CloneJob, CloneTask]:
        """Admit a clone (one transaction), then copy on a thread; the folder is ready when the task is done."""
        job = await self.run(lambda s: clone.start_clone(s, self.storage, self.principal, ref, data))
        storage, db = self.storage, self.db

        def settle(task, ok):
            with db.session() as s:
                clone.settle_clone(s, storage, job.target_id, ok)

        return job, self.clone_tasks.start(
            user=self.principal.username, source=job.source, target=job.target, target_id=job.target_id,
            total_bytes=job.total_bytes, total_files=job.total_files, settle=settle,
            copy=lambda task: clone.copy_tree(storage, job.src_path, job.dst_path, task.advance))
