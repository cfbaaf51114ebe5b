"""REST resource: vfolders — folders, files, invitations, sharing, clone, tus uploads, downloads."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import quote

from tornado import iostream, web
from tornado.log import app_log

from ..errors import Conflict, InvalidInput, TenancyError
from ..models import VFolderStatus
from .. import host_permissions as H
from .. import tenancy as T
from .. import validation as V
from ..vfolders.clone import CloneTask, CloneTasks
from ..vfolders import files as F
from ..vfolders import ops as O
from ..vfolders import transfer as X
from ..vfolders.storage import StorageHosts
from .base import APIHandler

ARCHIVES = {"tar": "application/x-tar", "zip": "application/zip"}


def _flag(value: str | None, field: str) -> bool:
    if value is None or value.lower() in ("", "0", "false", "no"):
        return False
    if value.lower() in ("1", "true", "yes"):
        return True
    raise InvalidInput(f"{field}: {value!r} is not true or false", field=field)


class VFolderBase(APIHandler):
    @property
    def storage(self) -> StorageHosts:
        return self.settings.get("vfolder_storage") or StorageHosts.instance()

    def flag(self, name: str) -> bool:
        return _flag(self.get_query_argument(name, None), name)

    # the storage-host permission every folder this handler touches needs (upload-file, download-file)
    host_perm: str | None = None

    def root_for(self, s, ref: str, op: str):
        vf, acc = O.find(s, self.principal, ref, op, self.host_perm)
        return vf, acc, self.storage.ready_path(vf.host, vf.id)

    def no_content(self) -> None:
        self.set_status(204)
        self.finish()

    @property
    def clone_tasks(self) -> CloneTasks:
        return self.settings.setdefault("clone_tasks", CloneTasks())

    async def start_clone(self, ref: str, data: dict) -> tuple[O.CloneJob, CloneTask]:
        """Admit a clone (one transaction), then copy on a thread; the folder is ready when the task is done."""
        job = await self.run(lambda s: O.start_clone(s, self.storage, self.principal, ref, data))
        storage, db = self.storage, self.db

        def settle(task, ok):
            with db.session() as s:
                O.settle_clone(s, storage, job.target_id, ok)

        return job, self.clone_tasks.start(
            user=self.principal.username, source=job.source, target=job.target, target_id=job.target_id,
            total_bytes=job.total_bytes, total_files=job.total_files, settle=settle,
            copy=lambda task: O.copy_tree(storage, job.src_path, job.dst_path, task.advance))


# -- folders ----------------------------------------------------------------------------------------

class VFoldersHandler(VFolderBase):
    async def get(self):
        trash = self.flag("trash")
        self.write_page(await self.run(lambda s: [O.to_dict(vf, acc)
                                                  for vf, acc in O.list_for(s, self.principal, trash=trash)]))

    async def post(self):
        data = self.body()
        self.write_json(await self.run(lambda s: O.to_dict(*O.create(s, self.storage, self.principal, data))), 201)


class VFolderHandler(VFolderBase):
    async def get(self, ref):
        self.write_json(await self.run(lambda s: O.info(s, self.storage, self.principal, ref)))

    async def patch(self, ref):
        data = self.body()
        self.write_json(await self.run(lambda s: O.to_dict(*O.update(s, self.storage, self.principal, ref, data))))

    async def delete(self, ref):
        """To the trash; ``?purge=true`` deletes the data for good (also for a folder already in the trash)."""
        purge = self.flag("purge")

        def work(s):
            vf, _ = O.find(s, self.principal, ref, "info")
            if vf.status == VFolderStatus.trashed:
                if not purge:
                    raise Conflict(f"vfolder {vf.name!r} is already in the trash; purge it with ?purge=true")
            else:
                O.delete(s, self.principal, vf.id)
            if purge:
                O.purge(s, self.storage, self.principal, vf.id)

        await self.run(work)
        self.no_content()


class RestoreHandler(VFolderBase):
    async def post(self, ref):
        self.write_json(await self.run(lambda s: O.to_dict(*O.restore(s, self.principal, ref))))


class PurgeHandler(VFolderBase):
    async def post(self, ref):
        await self.run(lambda s: O.purge(s, self.storage, self.principal, ref))
        self.no_content()


class CloneHandler(VFolderBase):
    """``POST``: 202 with the new folder (status ``cloning``) and its task; the copy runs in the background."""

    async def post(self, ref):
        job, task = await self.start_clone(ref, self.body())
        self.write_json({**job.folder, "task": task.to_dict()}, 202)


class TaskHandler(VFolderBase):
    """``GET tasks/<id>``: the progress of a clone the caller started."""

    async def get(self, task_id):
        self.write_json(self.clone_tasks.get(task_id, self.principal.username).to_dict())


class HostsHandler(VFolderBase):
    async def get(self):
        p = self.principal

        def work(s):

            grants = O.host_grants_for(s, T.users.get(s, p.username), p.access_key)
            return [{"name": h, "allowed": bool(grants.get(h)), "default": h == self.storage.default_host,
                     "permissions": [perm for perm in H.HOST_PERMISSIONS if perm in grants.get(h, ())],
                     "quota_backend": self.storage.quota_backend} for h in sorted(self.storage.hosts)]

        self.write_page(await self.run(work))


# -- files ------------------------------------------------------------------------------------------

class FilesHandler(VFolderBase):
    async def get(self, ref):
        path = self.get_query_argument("path", "")

        def work(s):
            _, _, root = self.root_for(s, ref, "read")
            return F.list_dir(root, path)

        self.write_page(await self.run(work))

    async def delete(self, ref):
        path, recursive = self.get_query_argument("path", None), self.flag("recursive")
        if path is None:
            raise InvalidInput("path: required", field="path")

        def work(s):
            _, _, root = self.root_for(s, ref, "delete-files")
            F.delete(root, path, recursive=recursive)

        await self.run(work)
        self.no_content()


class MkdirHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()

        V.check_unknown(data, ("path", "parents", "exist_ok"))
        parents = V.boolean(data.get("parents", False), "parents")
        exist_ok = V.boolean(data.get("exist_ok", False), "exist_ok")

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            F.mkdir(self.storage, root, data.get("path"), parents=parents, exist_ok=exist_ok)
            return F.stat(root, data.get("path"))

        self.write_json(await self.run(work), 201)


class MoveHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()

        V.check_unknown(data, ("src", "dst", "overwrite"))
        overwrite = V.boolean(data.get("overwrite", False), "overwrite")

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            F.move(root, data.get("src"), data.get("dst"), overwrite=overwrite)
            return F.stat(root, data.get("dst"))

        self.write_json(await self.run(work))


# -- invitations, sharing, leaving, kicking ---------------------------------------------------------

class InviteHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()
        self.write_json({"items": await self.run(lambda s: [
            O.invitation_to_dict(i) for i in O.invite(s, self.principal, ref, data)])}, 201)


class InvitationsHandler(VFolderBase):
    async def get(self):
        self.write_json(await self.run(lambda s: O.list_invitations(s, self.principal)))


class InvitationHandler(VFolderBase):
    async def delete(self, inv_id):
        await self.run(lambda s: O.cancel_invitation(s, self.principal, inv_id))
        self.no_content()


class InvitationAnswerHandler(VFolderBase):
    async def post(self, inv_id, answer):
        self.write_json(await self.run(lambda s: O.invitation_to_dict(
            O.answer_invitation(s, self.principal, inv_id, answer == "accept"))))


class ShareHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()
        self.write_json({"items": await self.run(lambda s: O.share(s, self.principal, ref, data))})


class UnshareHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()
        self.write_json({"items": await self.run(lambda s: O.unshare(s, self.principal, ref, data))})


class LeaveHandler(VFolderBase):
    async def post(self, ref):
        await self.run(lambda s: O.leave(s, self.principal, ref))
        self.no_content()


class CollaboratorsHandler(VFolderBase):
    async def get(self, ref):
        self.write_page(await self.run(lambda s: O.collaborators(s, self.principal, ref)))


class CollaboratorHandler(VFolderBase):
    async def delete(self, ref, user):
        await self.run(lambda s: O.kick(s, self.principal, ref, user))
        self.no_content()


# -- transfer -----------------------------------------------------------------------------------------

def _tus_headers(handler: web.RequestHandler) -> None:
    handler.set_header("Tus-Resumable", X.TUS_VERSION)
    handler.set_header("Cache-Control", "no-store")


class UploadsHandler(VFolderBase):
    """``POST``: create a tus upload (``Upload-Length``; the target in ``Upload-Metadata: path <b64>``
    or ``?path=``); answers 201 with its ``Location``."""

    host_perm = H.UPLOAD_FILE

    async def post(self, ref):
        _tus_headers(self)
        version = self.request.headers.get("Tus-Resumable")
        if version is not None and version != X.TUS_VERSION:
            self.set_header("Tus-Version", X.TUS_VERSION)
            raise PreconditionFailed(f"Tus-Resumable: only {X.TUS_VERSION} is supported")
        length = X.parse_length(self.request.headers.get("Upload-Length"), "Upload-Length")
        meta = X.parse_metadata(self.request.headers.get("Upload-Metadata"))
        path = self.get_query_argument("path", None) or meta.get("path") or meta.get("filename")
        if not path:
            raise InvalidInput("path: name the target in Upload-Metadata (path) or ?path=", field="path")
        overwrite = self.flag("overwrite") or _flag(meta.get("overwrite"), "overwrite")
        user = self.principal.username

        def work(s):
            vf, _, root = self.root_for(s, ref, "write")
            return X.create_upload(self.storage, root, host=vf.host, vfid=vf.id, quota=vf.quota, path=path,
                                   length=length, user=user, overwrite=overwrite)

        up = await self.run(work)
        location = f"{self.request.path.rstrip('/')}/{up.id}"
        self.set_header("Location", location)
        self.set_header("Upload-Offset", "0")
        self.write_json({"id": up.id, "location": location, "path": up.path, "length": up.length,
                         "offset": 0, "complete": up.length == 0}, 201)

    async def options(self, ref):
        _tus_headers(self)
        self.set_header("Tus-Version", X.TUS_VERSION)
        self.set_header("Tus-Extension", X.TUS_EXTENSIONS)
        self.set_header("Tus-Max-Size", str(X.MAX_UPLOAD))
        self.set_status(204)
        self.finish()


class PreconditionFailed(TenancyError):
    status = 412


class UnsupportedMediaType(TenancyError):
    status = 415


@web.stream_request_body
class UploadHandler(VFolderBase):
    """``HEAD``: the offset; ``PATCH``: append at ``Upload-Offset`` (streamed to disk); ``DELETE``: abort."""

    host_perm = H.UPLOAD_FILE

    _fd: int | None = None
    _error: BaseException | None = None

    async def prepare(self):
        await super().prepare()
        _tus_headers(self)
        if self.request.method != "PATCH":
            self.request.connection.set_max_body_size(0)
            return
        ref, upload_id = self.path_args
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/offset+octet-stream":
            raise UnsupportedMediaType("Content-Type: PATCH bodies must be application/offset+octet-stream",
                                       field="Content-Type")
        offset = X.parse_length(self.request.headers.get("Upload-Offset"), "Upload-Offset")
        user = self.principal.username

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            up, _ = X.load_upload(root, upload_id, user)
            fd, current = X.open_part(root, up)  # locked: one writer per upload
            if offset != current:
                os.close(fd)
                raise Conflict(f"Upload-Offset: {offset} does not match the upload's offset {current}",
                               field="Upload-Offset")
            return root, up, current, fd

        self._root, self._up, self._offset, self._fd = await self.run(work)
        # the body may not run past the declared length (tornado answers 400 and closes otherwise)
        self._room = self._up.length - self._offset
        self.request.connection.set_max_body_size(self._room)

    # The body is written while the next piece is read: one write at a time runs on the executor
    # (``_pending``), and data_received returns as soon as it is handed over, so tornado reads the
    # socket meanwhile. Pieces are gathered, uncopied, until FLUSH_AT bytes, then go out in one
    # writev: an executor hop costs more than writing 100 KiB, and through the proxy pieces arrive
    # in 64 KiB steps. Per upload at most one write and one gathering (about 2 MiB) are held.
    FLUSH_AT = 1 << 20
    _pieces: list | None = None
    _gathered = 0
    _pending: asyncio.Future | None = None
    _pending_len = 0
    _received = 0

    async def data_received(self, chunk: bytes):
        if self._fd is None or self._error is not None:
            return
        self._received += len(chunk)
        if self._received > self._room:
            self._error = InvalidInput("Upload-Length: the body runs past the declared length", field="body")
            return
        if self._pieces is None:
            self._pieces = []
        self._pieces.append(chunk)
        self._gathered += len(chunk)
        if self._gathered >= self.FLUSH_AT:
            await self._write(self._take())

    def _take(self) -> list:
        pieces, self._pieces, self._gathered = self._pieces or [], None, 0
        return pieces

    async def _write(self, data) -> None:
        await self._wait_write()
        if self._fd is None or self._error is not None:
            return
        self._pending = asyncio.get_running_loop().run_in_executor(None, X.write_all, self._fd, data)
        self._pending_len = sum(map(len, data))

    async def _wait_write(self) -> None:
        pending = self._pending
        if pending is None:
            return
        try:
            await asyncio.shield(pending)  # cancelled here, the write still owns the descriptor
        except TenancyError as e:
            self._error = e
        else:
            self._offset += self._pending_len
        self._pending = None

    async def _drain(self) -> None:
        """Write what is gathered and wait for it: the part file then holds every byte received."""
        if self._pieces and self._error is None:
            await self._write(self._take())
        await self._wait_write()

    def _close(self) -> None:
        if self._fd is None:
            return
        if self._pending is not None and not self._pending.done():
            # a write still running on the executor owns the descriptor until it returns (closing
            # it now could hand its number to another file mid-write)
            self._pending.add_done_callback(lambda _: self._close())
            return
        if self._pending is not None and not self._pending.cancelled() and self._pending.exception():
            self._error = self._pending.exception()  # a failed write: what follows it stays unwritten
        pieces = self._take()
        if pieces and self._error is None:
            # the connection dropped: keep what arrived (less than FLUSH_AT bytes, written inline)
            try:
                X.write_all(self._fd, pieces)
            except (OSError, TenancyError):
                pass
        os.close(self._fd)
        self._fd = None

    def on_connection_close(self):
        # what arrived stays on disk: HEAD tells the client where to resume
        self._close()
        super().on_connection_close()

    def on_finish(self):
        self._close()

    async def head(self, ref, upload_id):
        user = self.principal.username

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            return X.load_upload(root, upload_id, user)

        up, offset = await self.run(work)
        self.set_header("Upload-Offset", str(offset))
        self.set_header("Upload-Length", str(up.length))
        self.set_status(200)
        self.finish()

    async def patch(self, ref, upload_id):
        await self._drain()
        self._close()
        if self._error is not None:
            raise self._error
        up, root = self._up, self._root
        if self._offset == up.length:
            await self.run(lambda s: (self.root_for(s, ref, "write"),
                                      X.finish_upload(self.storage, root, up)))
        self.set_header("Upload-Offset", str(self._offset))
        self.set_status(204)
        self.finish()

    async def delete(self, ref, upload_id):
        user = self.principal.username

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            up, _ = X.load_upload(root, upload_id, user)
            X.abort_upload(root, up)

        await self.run(work)
        self.set_status(204)
        self.finish()


class DownloadHandler(VFolderBase):
    """A file (``Range`` supported) or a directory as a tar (default) or zip stream."""

    host_perm = H.DOWNLOAD_FILE
    default_archive = "tar"

    def download_path(self) -> str:
        return self.get_query_argument("path", "")

    async def get(self, ref):
        path = self.download_path()
        fmt = self.get_query_argument("archive", self.default_archive)
        if fmt not in ARCHIVES:
            raise InvalidInput(f"archive: {fmt!r} is not one of tar, zip", field="archive")

        def work(s):
            _, _, root = self.root_for(s, ref, "read")
            # other users' uploads in progress, however the path is spelled (a link as well)
            full = X.paths.resolve(root, path, reserved=F.RESERVED)
            if os.path.isdir(full):
                return root, X.paths.clean(path), None, None
            fd = X.paths.open_file(root, path, os.O_RDONLY, reserved=F.RESERVED)
            return root, X.paths.clean(path), fd, os.fstat(fd).st_size

        root, rel, fd, size = await self.run(work)
        loop = asyncio.get_running_loop()
        if fd is None:
            await self._archive(root, rel, fmt)
            return
        ahead: asyncio.Future | None = None
        try:
            rng = X.parse_range(self.request.headers.get("Range"), size)
            name = os.path.basename(rel)
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
            self.set_header("Accept-Ranges", "bytes")
            first, last = rng if rng else (0, size - 1)
            if rng:
                self.set_status(206)
                self.set_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.set_header("Content-Length", str(max(0, last - first + 1)))
            # the next piece is read while this one is sent: at most two pieces in memory
            chunks = X.read_range(fd, first, last)
            ahead = loop.run_in_executor(None, next, chunks, None)
            while True:
                data = await ahead
                if data is None:
                    break
                ahead = loop.run_in_executor(None, next, chunks, None)
                self.write(data)
                await self.flush()
        except iostream.StreamClosedError:
            return
        finally:
            if ahead is not None:  # a read still running owns the descriptor until it returns
                await asyncio.wait([ahead])
                ahead.cancelled() or ahead.exception()  # retrieved: a cut connection is no error
            os.close(fd)
        self.finish()

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, X.RangeNotSatisfiable):
            self.set_header("Content-Range", f"bytes */{exc.size}")  # send_error cleared the headers
        super().write_error(status_code, **kwargs)

    async def _archive(self, root: str, rel: str, fmt: str) -> None:
        name = (os.path.basename(rel) or "vfolder") + "." + fmt
        self.set_header("Content-Type", ARCHIVES[fmt])
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        q, cancelled, thread = X.archive_producer(root, rel, fmt)
        loop = asyncio.get_running_loop()
        try:
            while True:
                item = await loop.run_in_executor(None, q.get)
                if item is None:
                    break
                if isinstance(item, BaseException):
                    if not self._headers_written:
                        raise item
                    # too late for an error status: end without the last chunk, so the client sees a
                    # cut download rather than a complete-looking, truncated archive
                    app_log.error("archive of %r failed after %d bytes: %r", rel, self._sent, item)
                    self._auto_finish = False
                    self.request.connection.close()
                    return
                self.write(item)
                self._sent += len(item)
                await self.flush()
        except iostream.StreamClosedError:
            return
        finally:
            cancelled.set()
        self.finish()

    _sent = 0


ROUTES: list[tuple[str, Any]] = [
    (r"vfolders", VFoldersHandler),
    (r"vfolder-hosts", HostsHandler),
    (r"vfolder-invitations", InvitationsHandler),
    (r"vfolder-invitations/([^/]+)", InvitationHandler),
    (r"vfolder-invitations/([^/]+)/(accept|reject)", InvitationAnswerHandler),
    (r"vfolders/([^/]+)", VFolderHandler),
    (r"vfolders/([^/]+)/restore", RestoreHandler),
    (r"vfolders/([^/]+)/purge", PurgeHandler),
    (r"vfolders/([^/]+)/clone", CloneHandler),
    (r"tasks/([^/]+)", TaskHandler),
    (r"vfolders/([^/]+)/files", FilesHandler),
    (r"vfolders/([^/]+)/mkdir", MkdirHandler),
    (r"vfolders/([^/]+)/move", MoveHandler),
    (r"vfolders/([^/]+)/invitations", InviteHandler),
    (r"vfolders/([^/]+)/share", ShareHandler),
    (r"vfolders/([^/]+)/unshare", UnshareHandler),
    (r"vfolders/([^/]+)/leave", LeaveHandler),
    (r"vfolders/([^/]+)/collaborators", CollaboratorsHandler),
    (r"vfolders/([^/]+)/collaborators/([^/]+)", CollaboratorHandler),
    (r"vfolders/([^/]+)/uploads", UploadsHandler),
    (r"vfolders/([^/]+)/uploads/([^/]+)", UploadHandler),
    (r"vfolders/([^/]+)/download", DownloadHandler),
]



# -- OpenAPI ------------------------------------------------------------------------------------------

_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_PERM = {"type": "string", "enum": ["ro", "rw", "wd"]}
_QUOTA = {"oneOf": [{"type": "integer", "minimum": 1, "nullable": True}, {"type": "string"}],
          "description": "bytes, or a size such as '10g'"}
_USERS = {"oneOf": [{"type": "array", "items": _STR, "minItems": 1, "maxItems": O.MAX_EMAILS}, _STR]}
SCHEMAS = {
    "VFolder": {"id": _STR, "name": _STR, "host": _STR, "type": {"type": "string", "enum": ["user", "group"]},
                "owner": _STR, "domain": _STR, "usage_mode": _STR, "permission": {**_PERM, "nullable": True},
                "group_permission": {**_PERM, "nullable": True}, "is_owner": _BOOL,
                "via": {"type": "string", "nullable": True}, "cloneable": _BOOL, "public": _BOOL,
                "quota": {"type": "integer", "nullable": True}, "status": _STR,
                "created_at": {"type": "string", "nullable": True}, "trashed_at": {"type": "string", "nullable": True},
                "size": {"type": "integer", "nullable": True}, "file_count": {"type": "integer", "nullable": True},
                "mounted": _BOOL, "mounted_in": {"type": "array", "items": {"type": "object"}}},
    "VFolderFile": {"name": _STR, "type": _STR, "size": {"type": "integer"}, "mode": _STR, "permissions": _STR,
                    "mtime": {"type": "number"}, "modified": _STR},
    "VFolderInvitation": {"id": _STR, "vfolder": _STR, "vfolder_name": _STR, "inviter": _STR, "inviter_email": _STR,
                          "invitee": _STR, "invitee_email": _STR, "permission": _PERM, "state": _STR,
                          "created_at": {"type": "string", "nullable": True}},
    "VFolderCollaborator": {"user": _STR, "email": _STR, "permission": _PERM, "state": _STR, "invitation": _STR},
    "VFolderHost": {"name": _STR, "allowed": _BOOL, "default": _BOOL, "quota_backend": _STR,
                    "permissions": {"type": "array", "items": {"type": "string", "enum": list(H.HOST_PERMISSIONS)}}},
}
BODIES = {
    ("vfolders", "post"): {"name": _STR, "host": _STR, "usage_mode": {"type": "string", "enum": ["general", "data", "model"]},
                           "permission": _PERM, "group": _STR, "domain": _STR, "cloneable": _BOOL, "public": _BOOL,
                           "quota": _QUOTA},
    ("vfolders/{}", "patch"): {"name": _STR, "usage_mode": {"type": "string", "enum": ["general", "data", "model"]},
                               "permission": _PERM, "cloneable": _BOOL, "public": _BOOL, "quota": _QUOTA},
    ("vfolders/{}/clone", "post"): {"name": _STR, "host": _STR, "usage_mode": _STR, "cloneable": _BOOL, "quota": _QUOTA},
    ("vfolders/{}/mkdir", "post"): {"path": _STR, "parents": _BOOL, "exist_ok": _BOOL},
    ("vfolders/{}/move", "post"): {"src": _STR, "dst": _STR, "overwrite": _BOOL},
    ("vfolders/{}/invitations", "post"): {"emails": _USERS, "users": _USERS, "permission": _PERM},
    ("vfolders/{}/share", "post"): {"emails": _USERS, "users": _USERS, "permission": _PERM},
    ("vfolders/{}/unshare", "post"): {"emails": _USERS, "users": _USERS},
}
# a path parameter is named after the segment before it
_PARAM_NAMES = {"vfolders": "vfolder", "vfolder-invitations": "invitation", "collaborators": "user",
                "uploads": "upload", "tasks": "task"}
_QUERY = {
    ("vfolders", "get"): ["trash", "limit", "offset"], ("vfolders/{}", "delete"): ["purge"],
    ("vfolders/{}/files", "get"): ["path", "limit", "offset"], ("vfolders/{}/files", "delete"): ["path", "recursive"],
    ("vfolders/{}/download", "get"): ["path", "archive"], ("vfolders/{}/uploads", "post"): ["path", "overwrite"],
}
_ANSWERS = {
    "VFolder": {("vfolders", "post"), ("vfolders/{}", "get"), ("vfolders/{}", "patch"), ("vfolders/{}/restore", "post"),
                ("vfolders/{}/clone", "post")},
    "VFolderFile": {("vfolders/{}/mkdir", "post"), ("vfolders/{}/move", "post")},
    "VFolderInvitation": {("vfolder-invitations/{}/{}", "post")},
}
_PAGES = {("vfolders", "get"): "VFolder", ("vfolders/{}/files", "get"): "VFolderFile",
          ("vfolder-hosts", "get"): "VFolderHost", ("vfolders/{}/collaborators", "get"): "VFolderCollaborator"}


def _err(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_paths(prefix: str) -> dict:
    """OpenAPI 3.0 path items of :data:`ROUTES` (get/post/patch/delete) under ``{prefix}api/v1/``."""
    import re

    paths: dict = {}
    for route, handler in ROUTES:
        key = re.sub(r"\([^)]*\)", "{}", route)
        segments = key.split("/")
        template = "/".join("{" + _PARAM_NAMES.get(segments[i - 1], "answer") + "}" if seg == "{}" else seg
                            for i, seg in enumerate(segments))
        params = re.findall(r"\{([^}]+)\}", template)
        ops = {}
        for method in ("get", "post", "patch", "delete"):
            if method not in handler.__dict__:
                continue
            responses = {"400": _err("invalid input; `field` names it"), "401": _err("not authenticated"),
                         "403": _err("a rule denies it; `message` names the rule"), "404": _err("unknown"),
                         "409": _err("duplicate, conflicting, or in the trash")}
            schema_name = next((n for n, keys in _ANSWERS.items() if (key, method) in keys), None)
            ok_code = "201" if method == "post" and key in ("vfolders", "vfolders/{}/mkdir",
                                                            "vfolders/{}/invitations", "vfolders/{}/uploads") else "200"
            if key == "vfolders/{}/clone":
                ok_code = "202"  # the new folder (status cloning) and its task; the copy runs in the background
            if (key, method) in _PAGES:
                item = {"$ref": f"#/components/schemas/{_PAGES[key, method]}"}
                responses["200"] = {"description": "a page", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"items": {"type": "array", "items": item},
                                                     "total": {"type": "integer"}, "limit": {"type": "integer"},
                                                     "offset": {"type": "integer"}}}}}}
            elif key == "vfolders/{}/download":
                responses["200"] = {"description": "the file, or the directory as an archive",
                                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
                responses["206"] = {"description": "the requested byte range"}
                responses["416"] = _err("the range is outside the file")
            elif method == "delete" or key.endswith(("/purge", "/leave")):
                responses["204"] = {"description": "done"}
            else:
                schema = {"$ref": f"#/components/schemas/{schema_name}"} if schema_name else {"type": "object"}
                responses[ok_code] = {"description": "done", "content": {"application/json": {"schema": schema}}}
            if key == "vfolders/{}/uploads":
                responses["412"] = _err("unsupported Tus-Resumable version")
                responses["413"] = _err("the upload does not fit in the folder's quota")
            parameters = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in params]
            parameters += [{"name": q, "in": "query", "schema": {"type": "string"}} for q in _QUERY.get((key, method), [])]
            if key == "vfolders/{}/uploads":
                parameters += [{"name": "Upload-Length", "in": "header", "required": True, "schema": {"type": "integer", "minimum": 0}},
                               {"name": "Upload-Metadata", "in": "header", "schema": {"type": "string"}},
                               {"name": "Tus-Resumable", "in": "header", "schema": {"type": "string", "enum": [X.TUS_VERSION]}}]
            if key == "vfolders/{}/download":
                parameters.append({"name": "Range", "in": "header", "schema": {"type": "string"}})
            op = {"tags": ["vfolders"], "operationId": f"{method}_{template.replace('/', '_').replace('-', '_').replace('{', '').replace('}', '')}",
                  "summary": (handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else route,
                  "security": [{"hubToken": []}, {"backendaiSignature": []}], "responses": responses}
            if parameters:
                op["parameters"] = parameters
            if (key, method) in BODIES:
                op["requestBody"] = {"required": method != "post" or key != "vfolders/{}/clone", "content": {
                    "application/json": {"schema": {"type": "object", "properties": BODIES[key, method],
                                                    "additionalProperties": False}}}}
            ops[method] = op
        if ops:
            paths[f"{prefix}api/v1/{template}"] = ops
    return paths


def extend_spec(spec: dict, prefix: str) -> dict:
    """Add the vfolder paths and schemas to the service's spec (``build_spec``'s answer)."""
    spec["paths"].update(openapi_paths(prefix))
    spec["components"]["schemas"].update({n: {"type": "object", "properties": p} for n, p in SCHEMAS.items()})
    return spec
