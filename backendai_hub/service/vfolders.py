"""REST resource: vfolders — folders, their files, clones, invitations and sharing; the vfolder answer schemas."""

from __future__ import annotations

from .. import host_permissions as H
from .. import tenancy as T
from ..errors import Conflict, InvalidInput
from ..models import VFolderStatus
from ..vfolders import fields, files, folders, invitations, lookup, overview, sharing
from .routes import Route
from .vfolder_base import VFolderBase, op


# -- folders ----------------------------------------------------------------------------------------

class VFoldersHandler(VFolderBase):
    async def get(self):
        trash = self.flag("trash")
        self.write_page(await self.run(lambda s: [folders.to_dict(vf, acc)
                                                  for vf, acc in lookup.list_for(s, self.principal, trash=trash)]))

    async def post(self):
        data = self.body()
        self.write_json(await self.run(
            lambda s: folders.to_dict(*folders.create(s, self.storage, self.principal, data))), 201)


class VFolderHandler(VFolderBase):
    async def get(self, ref):
        self.write_json(await self.run(lambda s: folders.info(s, self.storage, self.principal, ref)))

    async def patch(self, ref):
        data = self.body()
        self.write_json(await self.run(
            lambda s: folders.to_dict(*folders.update(s, self.storage, self.principal, ref, data))))

    async def delete(self, ref):
        """To the trash; ``?purge=true`` deletes the data for good (also for a folder already in the trash)."""
        purge = self.flag("purge")

        def work(s):
            vf, _ = lookup.find(s, self.principal, ref, "info")
            if vf.status == VFolderStatus.trashed:
                if not purge:
                    raise Conflict(f"vfolder {vf.name!r} is already in the trash; purge it with ?purge=true")
            else:
                folders.delete(s, self.principal, vf.id)
            if purge:
                folders.purge(s, self.storage, self.principal, vf.id)

        await self.run(work)
        self.no_content()


class RestoreHandler(VFolderBase):
    async def post(self, ref):
        self.write_json(await self.run(lambda s: folders.to_dict(*folders.restore(s, self.principal, ref))))


class PurgeHandler(VFolderBase):
    async def post(self, ref):
        await self.run(lambda s: folders.purge(s, self.storage, self.principal, ref))
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
            return overview.hosts(self.storage, lookup.host_grants_for(s, T.users.get(s, p.username), p.access_key))

        self.write_page(await self.run(work))


# -- files ------------------------------------------------------------------------------------------

class FilesHandler(VFolderBase):
    audit_ops = {"DELETE": "delete-files"}

    async def get(self, ref):
        path = self.get_query_argument("path", "")

        def work(s):
            _, _, root = self.root_for(s, ref, "read")
            return files.list_dir(root, path)

        self.write_page(await self.run(work))

    async def delete(self, ref):
        path, recursive = self.get_query_argument("path", None), self.flag("recursive")
        if path is None:
            raise InvalidInput("path: required", field="path")

        def work(s):
            _, _, root = self.root_for(s, ref, "delete-files")
            files.delete(root, path, recursive=recursive)

        await self.run(work)
        self.no_content()


class MkdirHandler(VFolderBase):
    async def post(self, ref):
        f = fields.parse(self.body(), fields.MKDIR, fields.MKDIR_DEFAULTS)

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            files.mkdir(self.storage, root, f["path"], parents=f["parents"], exist_ok=f["exist_ok"])
            return files.stat(root, f["path"])

        self.write_json(await self.run(work), 201)


class MoveHandler(VFolderBase):
    async def post(self, ref):
        f = fields.parse(self.body(), fields.MOVE, fields.MOVE_DEFAULTS)

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            files.move(root, f["src"], f["dst"], overwrite=f["overwrite"])
            return files.stat(root, f["dst"])

        self.write_json(await self.run(work))


# -- invitations, sharing, leaving, kicking ---------------------------------------------------------

class InviteHandler(VFolderBase):
    audit_ops = {"POST": "invite"}

    async def post(self, ref):
        data = self.body()
        self.write_json({"items": await self.run(lambda s: [
            invitations.invitation_to_dict(i) for i in invitations.invite(s, self.principal, ref, data)])}, 201)


class InvitationsHandler(VFolderBase):
    async def get(self):
        self.write_json(await self.run(lambda s: invitations.list_invitations(s, self.principal)))


class InvitationHandler(VFolderBase):
    async def delete(self, inv_id):
        await self.run(lambda s: invitations.cancel_invitation(s, self.principal, inv_id))
        self.no_content()


class InvitationAnswerHandler(VFolderBase):
    def audit_operation(self) -> str:
        return self.path_args[1]  # accept / reject

    async def post(self, inv_id, answer):
        self.write_json(await self.run(lambda s: invitations.invitation_to_dict(
            invitations.answer_invitation(s, self.principal, inv_id, answer == "accept"))))


class ShareHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()
        self.write_json({"items": await self.run(lambda s: sharing.share(s, self.principal, ref, data))})


class UnshareHandler(VFolderBase):
    async def post(self, ref):
        data = self.body()
        self.write_json({"items": await self.run(lambda s: sharing.unshare(s, self.principal, ref, data))})


class LeaveHandler(VFolderBase):
    async def post(self, ref):
        await self.run(lambda s: sharing.leave(s, self.principal, ref))
        self.no_content()


class CollaboratorsHandler(VFolderBase):
    async def get(self, ref):
        self.write_page(await self.run(lambda s: sharing.collaborators(s, self.principal, ref)))


class CollaboratorHandler(VFolderBase):
    audit_ops = {"DELETE": "kick"}

    async def delete(self, ref, user):
        await self.run(lambda s: sharing.kick(s, self.principal, ref, user))
        self.no_content()


# -- routes and the OpenAPI description of what they carry -------------------------------------------

_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_NULLABLE_STR = {"type": "string", "nullable": True}
_PERM = {"type": "string", "enum": ["ro", "rw", "wd"]}
_USAGE_MODE = {"type": "string", "enum": ["general", "data", "model"]}
_QUOTA = {"oneOf": [{"type": "integer", "minimum": 1, "nullable": True}, {"type": "string"}],
          "description": "bytes, or a size such as '10g'"}
_USERS = {"oneOf": [{"type": "array", "items": _STR, "minItems": 1, "maxItems": fields.MAX_EMAILS}, _STR]}

# component schemas (name -> properties) of every vfolder answer, uploads' and downloads' included
SCHEMAS = {
    "VFolder": {"id": _STR, "name": _STR, "host": _STR, "type": {"type": "string", "enum": ["user", "group"]},
                "owner": _STR, "domain": _STR, "usage_mode": _STR, "permission": {**_PERM, "nullable": True},
                "group_permission": {**_PERM, "nullable": True}, "is_owner": _BOOL, "via": _NULLABLE_STR,
                "cloneable": _BOOL, "public": _BOOL, "quota": _NULLABLE_INT, "status": _STR,
                "created_at": _NULLABLE_STR, "trashed_at": _NULLABLE_STR, "size": _NULLABLE_INT,
                "file_count": _NULLABLE_INT, "mounted": _BOOL,
                "mounted_in": {"type": "array", "items": {"type": "object"}}},
    "VFolderFile": {"name": _STR, "type": _STR, "size": _INT, "mode": _STR, "permissions": _STR,
                    "mtime": {"type": "number"}, "modified": _STR},
    "VFolderInvitation": {"id": _STR, "vfolder": _STR, "vfolder_name": _STR, "inviter": _STR, "inviter_email": _STR,
                          "invitee": _STR, "invitee_email": _STR, "permission": _PERM, "state": _STR,
                          "created_at": _NULLABLE_STR},
    "VFolderCollaborator": {"user": _STR, "email": _STR, "permission": _PERM, "state": _STR, "invitation": _STR},
    "VFolderHost": {"name": _STR, "allowed": _BOOL, "default": _BOOL, "quota_backend": _STR,
                    "permissions": {"type": "array", "items": {"type": "string", "enum": list(H.HOST_PERMISSIONS)}}},
}
_FOLDER_FIELDS = {"name": _STR, "usage_mode": _USAGE_MODE, "permission": _PERM, "cloneable": _BOOL, "public": _BOOL,
                  "quota": _QUOTA}
_WHO = {"emails": _USERS, "users": _USERS}
_VF = ("vfolder",)
ROUTES = [
    Route(r"vfolders", VFoldersHandler, tag="vfolders", ops={
        "get": op(page="VFolder", query=("trash",)),
        "post": op(status="201", answer="VFolder",
                   body={**_FOLDER_FIELDS, "host": _STR, "group": _STR, "domain": _STR})}),
    Route(r"vfolder-hosts", HostsHandler, tag="vfolders", ops={"get": op(page="VFolderHost")}),
    Route(r"vfolder-invitations", InvitationsHandler, tag="vfolders", ops={"get": op()}),
    Route(r"vfolder-invitations/([^/]+)", InvitationHandler, ("invitation",), tag="vfolders",
          ops={"delete": op(status="204")}),
    Route(r"vfolder-invitations/([^/]+)/(accept|reject)", InvitationAnswerHandler, ("invitation", "answer"),
          tag="vfolders", ops={"post": op(answer="VFolderInvitation")}),
    Route(r"vfolders/([^/]+)", VFolderHandler, _VF, tag="vfolders", ops={
        "get": op(answer="VFolder"), "patch": op(answer="VFolder", body=_FOLDER_FIELDS),
        "delete": op(status="204", query=("purge",))}),
    Route(r"vfolders/([^/]+)/restore", RestoreHandler, _VF, tag="vfolders", ops={"post": op(answer="VFolder")}),
    Route(r"vfolders/([^/]+)/purge", PurgeHandler, _VF, tag="vfolders", ops={"post": op(status="204")}),
    Route(r"vfolders/([^/]+)/clone", CloneHandler, _VF, tag="vfolders", ops={"post": op(
        status="202", answer="VFolder", body_required=False,
        body={"name": _STR, "host": _STR, "usage_mode": _STR, "cloneable": _BOOL, "quota": _QUOTA})}),
    Route(r"tasks/([^/]+)", TaskHandler, ("task",), tag="vfolders", ops={"get": op()}),
    Route(r"vfolders/([^/]+)/files", FilesHandler, _VF, tag="vfolders", ops={
        "get": op(page="VFolderFile", query=("path",)), "delete": op(status="204", query=("path", "recursive"))}),
    Route(r"vfolders/([^/]+)/mkdir", MkdirHandler, _VF, tag="vfolders", ops={"post": op(
        status="201", answer="VFolderFile", body={"path": _STR, "parents": _BOOL, "exist_ok": _BOOL})}),
    Route(r"vfolders/([^/]+)/move", MoveHandler, _VF, tag="vfolders", ops={"post": op(
        answer="VFolderFile", body={"src": _STR, "dst": _STR, "overwrite": _BOOL})}),
    Route(r"vfolders/([^/]+)/invitations", InviteHandler, _VF, tag="vfolders", ops={"post": op(
        status="201", body={**_WHO, "permission": _PERM})}),
    Route(r"vfolders/([^/]+)/share", ShareHandler, _VF, tag="vfolders",
          ops={"post": op(body={**_WHO, "permission": _PERM})}),
    Route(r"vfolders/([^/]+)/unshare", UnshareHandler, _VF, tag="vfolders", ops={"post": op(body=_WHO)}),
    Route(r"vfolders/([^/]+)/leave", LeaveHandler, _VF, tag="vfolders", ops={"post": op(status="204")}),
    Route(r"vfolders/([^/]+)/collaborators", CollaboratorsHandler, _VF, tag="vfolders",
          ops={"get": op(page="VFolderCollaborator")}),
    Route(r"vfolders/([^/]+)/collaborators/([^/]+)", CollaboratorHandler, ("vfolder", "user"), tag="vfolders",
          ops={"delete": op(status="204")}),
]
