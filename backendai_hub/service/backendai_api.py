"""Backend.AI-compatible routes the official client (backend.ai-client 23.9) calls, in the manager's shapes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado import iostream

from .. import host_permissions as H
from .. import tenancy as T
from .. import validation as V
from ..errors import Forbidden, InvalidInput, NotFound
from ..vfolders import (
    backendai_format,
    fields,
    files,
    folders,
    invitations,
    lookup,
    paths,
    sharing,
    transfer_tokens,
    uploads,
)
from ..vfolders.clone import DONE, RUNNING
from . import storage_proxy
from .storage_proxy import token_secret
from .vfolder_base import VFolderBase

# The version handshake, folders/_/hosts and everything else the client's VFolder functions call under
# folders/ (the GraphQL lists behind `vfolder list` are in backendai_graphql.py): the same operations as our own vfolder
# API (vfolders/folders.py, invitations.py, sharing.py, files.py, uploads.py), in the manager's request,
# answer and error shapes (vfolders/backendai_format.py); its transfers are in storage_proxy.py.

# the API revision of backend.ai-client 23.9.x (ai.backend.client.config.API_VERSION)
API_VERSION = "v7.20230615"
MANAGER_VERSION = "23.09.0"


def handshake(settings: dict) -> dict:
    """``GET <prefix>``: the unauthenticated handshake every client session starts with (served by
    pages.RootHandler, which gives a browser the self-service page at the same address)."""
    return {"version": API_VERSION, "manager": MANAGER_VERSION, "backendai_hub": settings["version"]}


class CompatBase(VFolderBase):
    """A compat handler: errors also carry the manager's problem fields, which the client prints."""

    _problem = False

    def write_error(self, status_code: int, **kwargs):
        self._problem = True
        super().write_error(status_code, **kwargs)

    def finish(self, chunk=None):
        if self._problem and isinstance(chunk, str):
            chunk = json.dumps(backendai_format.problem(self.get_status(), json.loads(chunk)))
        return super().finish(chunk)


class VFolderHostsHandler(CompatBase):
    """``GET <prefix>folders/_/hosts``: storage hosts the caller may use (domain, groups, keypair policy)."""

    async def get(self):
        p = self.principal

        def work(s):
            grants = lookup.host_grants_for(s, T.users.get(s, p.username), p.access_key)
            allowed = sorted(h for h, perms in grants.items() if perms)
            default = self.settings.get("default_vfolder_host", "local")
            return {"default": default if default in allowed else None, "allowed": allowed,
                    "permissions": {h: [x for x in H.HOST_PERMISSIONS if x in grants[h]] for h in allowed}}

        self.write_json(await self.run(work))


# -- vfolders (what the client's VFolder functions call under folders/) ------------------------------

def _flag(data: dict, field: str) -> bool:
    """A boolean the client sends (absent or null: false); "false" is not true."""
    value = data.get(field)
    return False if value is None else V.boolean(value, field)


def _compat_quota(value: Any) -> Any:
    # the client sends "0" (or 0) for "as much as the policy allows"
    return None if value in (None, 0, "0", "", "0b", "0B") else value


class CompatFoldersHandler(CompatBase):
    async def get(self):
        self.write_json(await self.run(lambda s: [backendai_format.folder_dict(folders.to_dict(vf, acc))
                                                  for vf, acc in lookup.list_for(s, self.principal)]))

    async def post(self):
        data = self.body()
        if data.get("unmanaged_path"):
            raise Forbidden("unmanaged vfolders (host paths) are not supported")
        req = {k: v for k, v in data.items() if k in fields.CREATE and v is not None}
        if "quota" in req:
            req["quota"] = _compat_quota(req["quota"])
            if req["quota"] is None:
                del req["quota"]
        self.write_json(await self.run(lambda s: backendai_format.folder_dict(folders.to_dict(
            *folders.create(s, self.storage, self.principal, req)))), 201)

    async def delete(self):
        data = self.body()
        await self.run(lambda s: folders.delete(s, self.principal, data.get("id")))
        self.no_content()


class CompatFolderHandler(CompatBase):
    async def get(self, name):
        self.write_json(await self.run(
            lambda s: backendai_format.folder_dict(folders.info(s, self.storage, self.principal, name))))

    async def delete(self, name):
        await self.run(lambda s: folders.delete(s, self.principal, name))
        self.no_content()


class CompatRenameHandler(CompatBase):
    async def post(self, name):
        new_name = fields.check_name(self.body().get("new_name"), "new_name")
        await self.run(lambda s: folders.update(s, self.storage, self.principal, name, {"name": new_name}))
        self.no_content()


class CompatMkdirHandler(CompatBase):
    async def post(self, name):
        data = self.body()
        targets = data.get("path")
        targets = targets if isinstance(targets, list) else [targets]
        parents, exist_ok = _flag(data, "parents"), _flag(data, "exist_ok")

        def work(s):
            _, _, root = self.root_for(s, name, "write")
            for p in targets:
                files.mkdir(self.storage, root, p, parents=parents, exist_ok=exist_ok)

        await self.run(work)
        self.write_json({"results": {"success": [str(p) for p in targets], "failed": []}}, 201)


class CompatFilesHandler(CompatBase):
    async def get(self, name):
        data = self.body()
        path = data.get("path", self.get_query_argument("path", ""))
        path = "" if path in (".", "./") else path

        def work(s):
            _, _, root = self.root_for(s, name, "read")
            return files.list_dir(root, path)

        entries = await self.run(work)
        shown = backendai_format.file_entries(entries)
        self.write_json({"files": json.dumps(shown), "items": shown, "folder_path": path})


class CompatRenameFileHandler(CompatBase):
    async def post(self, name):
        data = self.body()
        target, new_name = data.get("target_path"), data.get("new_name")
        if not isinstance(new_name, str) or not new_name or "/" in new_name:
            raise InvalidInput("new_name: must be a name without '/'", field="new_name")
        if not isinstance(target, str):
            raise InvalidInput("target_path: must be a path", field="target_path")
        parent = paths.clean(target, field="target_path", allow_root=False).rpartition("/")[0]

        def work(s):
            _, _, root = self.root_for(s, name, "write")
            files.move(root, target, f"{parent}/{new_name}" if parent else new_name)

        await self.run(work)
        self.write_json({})


class CompatMoveFileHandler(CompatBase):
    async def post(self, name):
        data = self.body()

        def work(s):
            _, _, root = self.root_for(s, name, "write")
            dst = paths.clean(data.get("dst"), field="dst", allow_root=True)
            try:
                if files.stat(root, dst)["type"] == "dir":  # into an existing directory, as mv does
                    src = paths.clean(data.get("src"), field="src", allow_root=False)
                    dst = f"{dst}/{src.rpartition('/')[2]}" if dst else src.rpartition("/")[2]
            except NotFound:
                pass
            files.move(root, data.get("src"), dst, overwrite=True)

        await self.run(work)
        self.write_json({})


class CompatDeleteFilesHandler(CompatBase):
    async def delete(self, name):
        data = self.body()
        targets = data.get("files")
        if not isinstance(targets, list) or not targets:
            raise InvalidInput("files: must be a list of paths", field="files")
        recursive = _flag(data, "recursive")

        def work(s):
            _, _, root = self.root_for(s, name, "delete-files")
            for f in targets:
                files.delete(root, f, recursive=recursive)

        await self.run(work)
        self.write_json({})


class CompatRequestUploadHandler(CompatBase):
    host_perm = H.UPLOAD_FILE

    async def post(self, name):
        data = self.body()
        length = data.get("size")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise InvalidInput("size: must be a byte count", field="size")
        user = self.principal.username

        def work(s):
            vf, _, root = self.root_for(s, name, "write")
            up = uploads.create_upload(self.storage, root, host=vf.host, vfid=vf.id, quota=vf.quota,
                                 path=data.get("path"), length=length, user=user, overwrite=True)
            return vf.id, up

        vfid, up = await self.run(work)
        token = transfer_tokens.make_token(token_secret(self), {"kind": "upload", "user": user, "vfolder": vfid,
                                                                "upload": up.id})
        self.write_json({"token": token, "url": self._transfer_url("upload")})

    def _transfer_url(self, what: str) -> str:
        return storage_proxy.transfer_url(self.settings, self.request.protocol, self.request.host, what)


class CompatRequestDownloadHandler(CompatRequestUploadHandler):
    host_perm = H.DOWNLOAD_FILE

    async def post(self, name):
        data = self.body()
        user = self.principal.username

        def work(s):
            vf, _, root = self.root_for(s, name, "read")
            # refuse a bad path now, not at download time
            paths.resolve(root, data.get("path"), reserved=files.RESERVED)
            return vf.id

        vfid = await self.run(work)
        token = transfer_tokens.make_token(token_secret(self), {"kind": "download", "user": user, "vfolder": vfid,
                                                   "path": paths.clean(data.get("path")),
                                                   "archive": _flag(data, "archive")})
        self.write_json({"token": token, "url": self._transfer_url("download")})


class CompatInviteHandler(CompatBase):
    async def post(self, name):
        """Answers the invitees' emails, as the manager does (the CLI prints them)."""
        data = self.body()
        req = {"emails": data.get("user_ids", data.get("emails")),
               "permission": data.get("perm", data.get("permission", "rw"))}
        self.write_json({"invited_ids": await self.run(lambda s: [
            i.invitee.email for i in invitations.invite(s, self.principal, name, req)])}, 201)


class CompatInvitationsHandler(CompatBase):
    async def get(self):
        got = await self.run(lambda s: invitations.list_invitations(s, self.principal))
        self.write_json({"invitations": [{**i, "inviter": i["inviter_email"], "invitee": i["invitee_email"],
                                          "perm": i["permission"], "vfolder_id": i["vfolder"]}
                                         for i in got["incoming"]]})


class CompatAcceptInvitationHandler(CompatBase):
    audit_ops = {"POST": "accept"}
    audit_entity = "vfolder-invitation"

    async def post(self):
        inv_id = self.body().get("inv_id")
        await self.run(lambda s: invitations.answer_invitation(s, self.principal, inv_id, True))
        self.write_json({})


class CompatDeleteInvitationHandler(CompatBase):
    audit_ops = {"DELETE": "delete"}
    audit_entity = "vfolder-invitation"

    async def delete(self):
        """The invitee rejects the invitation; its inviter (or the folder's owner) cancels it."""
        inv_id = self.body().get("inv_id")

        def work(s):
            if any(i["id"] == inv_id for i in invitations.list_invitations(s, self.principal)["incoming"]):
                invitations.answer_invitation(s, self.principal, inv_id, False)
            else:
                invitations.cancel_invitation(s, self.principal, inv_id)

        await self.run(work)
        self.write_json({})


def _emails(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class CompatShareHandler(CompatBase):
    async def post(self, name):
        """A per-user permission on a group folder; answers the emails now holding it."""
        data = self.body()
        emails = _emails(data.get("emails"))

        def work(s):
            got = sharing.share(s, self.principal, name, {"emails": emails, "permission": data.get("permission", "rw")})
            asked = {e.lower() for e in emails}  # share() accepted them: a list of strings
            return [c["email"] for c in got if c["state"] == "granted" and asked & {c["email"], c["user"]}]

        self.write_json({"shared_emails": await self.run(work)}, 201)


class CompatUnshareHandler(CompatBase):
    async def delete(self, name):
        emails = _emails(self.body().get("emails"))
        await self.run(lambda s: sharing.unshare(s, self.principal, name, {"emails": emails}))
        self.write_json({"unshared_emails": emails})


class CompatLeaveHandler(CompatBase):
    async def post(self, name):
        """Leave a folder one was invited to; ``shared_user_uuid`` may only name the caller."""
        other = self.body().get("shared_user_uuid")

        def work(s):
            me = T.users.get(s, self.principal.username)
            if other is not None and other not in (me.username, me.email):
                raise Forbidden("shared_user_uuid: you may only leave yourself; the folder's owner removes "
                                "other users")
            sharing.leave(s, self.principal, name)

        await self.run(work)
        self.write_json({"msg": "left the shared vfolder"})


class CompatCloneHandler(CompatBase):
    async def post(self, name):
        """Admit the clone and answer its ``bgtask_id``; the client follows it on ``events/background-task``."""
        data = self.body()
        if data.get("permission") is not None:
            fields.permission(data["permission"], "permission")
        fields.check_name(data.get("target_name"), "target_name")  # the field the client sent, in the answer
        # a clone is a user folder, and its owner always has wd: the manager's "permission" changes nothing
        req = {k: v for k, v in (("name", data.get("target_name")), ("host", data.get("target_host")),
                                 ("usage_mode", data.get("usage_mode")), ("cloneable", data.get("cloneable")))
               if v is not None}
        job, task = await self.start_clone(name, req)
        self.write_json({**backendai_format.folder_dict(job.folder), "bgtask_id": task.id}, 201)


class CompatBackgroundTaskHandler(CompatBase):
    """``GET <prefix>events/background-task?task_id=``: a clone's progress as the manager's bgtask events
    (``bgtask_updated`` with current/total bytes, then ``bgtask_done`` or ``bgtask_failed``, then
    ``server_close``, which tells the client not to reconnect)."""

    POLL = 0.2

    async def get(self):
        task = self.clone_tasks.get(self.get_query_argument("task_id", None), self.principal.username)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        seen = -1
        try:
            # a comment now, events from the next poll on: the client (23.9) starts its progress viewer once
            # the headers are in and crashes if an event is already waiting (it cancels a spinner that never
            # ran). configurable-http-proxy holds the headers until the first body bytes, hence the comment.
            self.write(f": progress of task {task.id}\n\n")
            await self.flush()
            await asyncio.sleep(self.POLL)
            while task.status == RUNNING:
                if task.version != seen:
                    seen = task.version
                    d = task.to_dict()
                    await self._event("bgtask_updated", {"task_id": task.id, "message": d["message"],
                                                         "current_progress": d["copied_bytes"],
                                                         "total_progress": d["total_bytes"]})
                await asyncio.sleep(self.POLL)
            d = task.to_dict()
            await self._event("bgtask_done" if d["status"] == DONE else "bgtask_failed",
                              {"task_id": task.id, "message": d["message"]})
            await self._event("server_close", {})
        except iostream.StreamClosedError:
            return  # the client went away; the clone goes on
        self.finish()

    async def _event(self, name: str, data: dict) -> None:
        self.write(f"event: {name}\ndata: {json.dumps(data)}\n\n")
        await self.flush()


class CompatUpdateOptionsHandler(CompatBase):
    async def post(self, name):
        data = self.body()
        req = {k: data[k] for k in ("cloneable", "permission") if data.get(k) is not None}
        await self.run(lambda s: folders.update(s, self.storage, self.principal, name, req))
        self.write_json({}, 201)


# vfolder routes, relative to the service prefix
VFOLDER_ROUTES: list[tuple[str, Any]] = [
    (r"folders/?", CompatFoldersHandler),
    (r"folders/invitations/list", CompatInvitationsHandler),
    (r"folders/invitations/accept", CompatAcceptInvitationHandler),
    (r"folders/invitations/delete", CompatDeleteInvitationHandler),
    (r"folders/([^/]+)", CompatFolderHandler),
    (r"folders/([^/]+)/rename", CompatRenameHandler),
    (r"folders/([^/]+)/mkdir", CompatMkdirHandler),
    (r"folders/([^/]+)/files", CompatFilesHandler),
    (r"folders/([^/]+)/rename-file", CompatRenameFileHandler),
    (r"folders/([^/]+)/move-file", CompatMoveFileHandler),
    (r"folders/([^/]+)/delete-files", CompatDeleteFilesHandler),
    (r"folders/([^/]+)/request-upload", CompatRequestUploadHandler),
    (r"folders/([^/]+)/request-download", CompatRequestDownloadHandler),
    (r"folders/([^/]+)/invite", CompatInviteHandler),
    (r"folders/([^/]+)/share", CompatShareHandler),
    (r"folders/([^/]+)/unshare", CompatUnshareHandler),
    (r"folders/([^/]+)/leave", CompatLeaveHandler),
    (r"folders/([^/]+)/clone", CompatCloneHandler),
    (r"folders/([^/]+)/update-options", CompatUpdateOptionsHandler),
    (r"events/background-task", CompatBackgroundTaskHandler),
]


def routes(prefix: str) -> list:
    return [
        (f"{prefix}folders/_/hosts", VFolderHostsHandler),
        *[(f"{prefix}{route}", handler) for route, handler in storage_proxy.ROUTES + VFOLDER_ROUTES],
    ]
