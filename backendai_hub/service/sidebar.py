"""REST resource: what the JupyterLab sidebar needs beyond the vfolder routes: the overview in one call,
short-lived upload and download grants for the browser, and restarting a session with folders mounted."""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from sqlalchemy import select

from .. import host_permissions as H
from .. import tenancy as T
from .. import validation as V
from ..errors import Conflict, InvalidInput, Unavailable
from ..models import LIVE_STATUSES, KernelSession
from ..vfolders import files, overview, paths, transfer_tokens, upload_records, uploads
from ..vfolders.fields import HEX32_RE, NAME_RE
from ..vfolders.mounts import plan_mounts
from ..vfolders.usage_cache import UsageCache
from . import shell
from .routes import Route
from .storage_proxy import ROUTES as TRANSFER_ROUTES
from .storage_proxy import token_secret
from .vfolder_base import VFolderBase, op

log = logging.getLogger("backendai_hub.service")

GRANT_TTL = 600.0  # seconds an upload or download grant's URL works (BackendAIService.upload_grant_ttl)
RESTART_DELAY = 1.0  # the restart's answer reaches the browser through the server that is about to stop
_UPLOAD_PATH, _DOWNLOAD_PATH = (dict((h.token_kind, r) for r, h in TRANSFER_ROUTES)[k] for k in ("upload", "download"))


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class _SidebarBase(VFolderBase):
    may_revoke_access = False  # grants and overviews take nobody's access away

    @property
    def grant_ttl(self) -> float:
        return float(self.settings.get("upload_grant_ttl") or GRANT_TTL)

    def transfer_url(self, path: str, token: str, **query: str) -> str:
        """A storage-proxy URL for the browser: under the public transfer listener's URL when there is
        one (``BackendAIService.transfer_bind_url``: the bytes skip the hub's proxy, CORS lets the hub's
        pages call it), else a path at the hub's public address (the browser's own origin; the
        session's server reaches the service at an address of its own, which the browser may not)."""
        base = self.settings.get("transfer_public_url") or self.settings.get("service_prefix", "/services/backendai/")
        extra = "".join(f"&{k}={quote(v)}" for k, v in query.items())
        return f"{base}{path}?token={token}{extra}"

    def grant(self, claims: dict) -> tuple[str, str]:
        """A signed token for ``claims`` and its expiry (ISO 8601)."""
        ttl = self.grant_ttl
        token = transfer_tokens.make_token(token_secret(self), claims, ttl=ttl)
        return token, _iso(datetime.now(timezone.utc) + timedelta(seconds=ttl))


class SidebarHandler(_SidebarBase):
    """``GET``: every folder the caller reaches with its mount state in the session and the actions allowed."""

    @property
    def usage_cache(self) -> UsageCache:
        return self.settings.setdefault("vfolder_usage_cache", UsageCache(self.storage))

    async def get(self):
        p = self.principal
        # a session's token shows its own server's mounts; another caller may name one of their servers
        server = p.server if p.from_session else self.get_query_argument("server", None)
        self.write_json(await self.run(lambda s: overview.overview(s, self.storage, p, server, self.usage_cache,
                                                                    p.access_key)))


class UploadGrantHandler(_SidebarBase):
    """``POST {path, size, overwrite?, parts?}``: a new tus upload and a short-lived URL for the
    browser; with ``parts`` (up to 16), the file may go as that many partial uploads side by side (tus
    concatenation: one request cannot fill the link from a browser), each with its byte range and
    URL, joined into the file when the last one ends. The service decides: small files, or a folder
    without room for the joining, get one URL. ``POST {upload_id}``: fresh URLs for an unfinished
    upload of the caller's in this folder (a final one whose parts are all complete is joined then)."""

    host_perm = H.UPLOAD_FILE
    audit_ops = {"POST": "upload-grant"}

    async def post(self, ref):
        data = self.body()
        user = self.principal.username
        if "upload_id" in data:
            V.check_unknown(data, ("upload_id",))
            upload_id = data["upload_id"]
            if not isinstance(upload_id, str) or not HEX32_RE.match(upload_id):
                raise InvalidInput("upload_id: must be the id a grant answered (32 hex digits)", field="upload_id")

            def work(s):
                vf, _, root = self.root_for(s, ref, "write")
                up, offset = upload_records.load_upload(root, upload_id, user)
                parts = upload_records.partials(root, up) if up.is_final else []
                if parts and all(size == part.length for part, size in parts):
                    # every byte arrived but the join did not happen (it ran out of room, or the
                    # service stopped): join now
                    uploads.finish_upload(self.storage, root, up, self.storage.full_error(vf.host, vf.id))
                    parts = []
                return vf.id, up, offset, parts

            status = 200
        else:
            V.check_unknown(data, ("path", "size", "overwrite", "parts"))
            size = data.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= uploads.MAX_UPLOAD:
                raise InvalidInput(f"size: must be a byte count from 0 to {uploads.MAX_UPLOAD}", field="size")
            overwrite = data.get("overwrite", False)
            if not isinstance(overwrite, bool):
                raise InvalidInput("overwrite: must be true or false", field="overwrite")
            want = data.get("parts", 1)
            if isinstance(want, bool) or not isinstance(want, int) or not 1 <= want <= uploads.MAX_PARTS:
                raise InvalidInput(f"parts: must be a count from 1 to {uploads.MAX_PARTS}", field="parts")
            path = data.get("path")

            def work(s):
                vf, _, root = self.root_for(s, ref, "write")
                up, parts = uploads.create_parts(self.storage, root, host=vf.host, vfid=vf.id, quota=vf.quota,
                                                 path=path, length=size, user=user, overwrite=overwrite, parts=want)
                return vf.id, up, 0, [(part, 0) for part in parts]

            status = 201
        vfid, up, offset, parts = await self.run(work)
        answer = {"upload_id": up.id, "path": up.path, "length": up.length, "offset": offset,
                  "complete": (up.is_final and not parts) or up.length == 0}
        if parts:
            start, answer["parts"] = 0, []
            for part, part_offset in parts:
                token, expires = self.grant({"kind": "upload", "user": user, "vfolder": vfid, "upload": part.id})
                answer["parts"].append({"upload_id": part.id, "url": self.transfer_url(_UPLOAD_PATH, token),
                                        "start": start, "end": start + part.length, "offset": part_offset})
                start += part.length
            answer["url"], answer["expires_at"] = answer["parts"][0]["url"], expires
        else:
            token, expires = self.grant({"kind": "upload", "user": user, "vfolder": vfid, "upload": up.id})
            answer["url"], answer["expires_at"] = self.transfer_url(_UPLOAD_PATH, token), expires
        self.write_json(answer, status)


class DownloadGrantHandler(_SidebarBase):
    """``POST {path, archive?}``: a short-lived URL the browser downloads a file (Range) or a directory
    (a zip, or a tar) from."""

    host_perm = H.DOWNLOAD_FILE
    audit_ops = {"POST": "download-grant"}

    async def post(self, ref):
        data = self.body()
        V.check_unknown(data, ("path", "archive"))
        archive = data.get("archive", "zip")
        if archive not in ("zip", "tar"):
            raise InvalidInput(f"archive: {str(archive)[:20]!r} is not one of zip, tar", field="archive")
        user = self.principal.username

        def work(s):
            vf, _, root = self.root_for(s, ref, "read")
            full = paths.resolve(root, data.get("path"), reserved=files.RESERVED)
            if not os.path.lexists(full):
                raise InvalidInput(f"path: {data.get('path')!r} does not exist in vfolder {vf.name!r}", field="path")
            return vf, paths.clean(data.get("path")), os.path.isdir(full)

        vf, rel, directory = await self.run(work)
        token, expires = self.grant({"kind": "download", "user": user, "vfolder": vf.id, "path": rel,
                                     "archive": directory})
        name = (os.path.basename(rel) or vf.name) + (f".{archive}" if directory else "")
        self.write_json({"url": self.transfer_url(_DOWNLOAD_PATH, token, **({"archive": archive} if directory else {})),
                         "expires_at": expires, "name": name, "directory": directory}, 201)


def _requested(data: dict) -> list[str]:
    names = data.get("vfolders")
    if (not isinstance(names, list) or not names or len(names) > 100
            or not all(isinstance(v, str) and (NAME_RE.match(v) or HEX32_RE.match(v)) for v in names)):
        raise InvalidInput("vfolders: must be a list of 1 to 100 vfolder names or ids", field="vfolders")
    return list(dict.fromkeys(names))


class RestartHandler(_SidebarBase):
    """``POST {vfolders}``: restart the caller's server (a session token's own; others name ``server``)
    with its options plus those folders, once each is checked mountable; 202, then the hub restarts it."""

    audit_entity = "session"
    audit_ops = {"POST": "restart"}

    async def post(self):
        data = self.body()
        p = self.principal
        V.check_unknown(data, ("vfolders",) if p.from_session else ("vfolders", "server"))
        requested = _requested(data)
        server = p.server if p.from_session else data.get("server", "")
        if server is None:
            raise Conflict("this token names no server: restart it from the hub's home page", field="server")
        if not isinstance(server, str):
            raise InvalidInput("server: must be a server name ('' for the default one)", field="server")
        hub = self.settings.get("hub_api")

        def check(s):
            user = T.users.get(s, p.username)
            live = s.scalar(select(KernelSession.id).where(KernelSession.user_id == user.id,
                                                           KernelSession.server_name == server,
                                                           KernelSession.status.in_(LIVE_STATUSES)))
            if live is None:
                raise Conflict(f"you have no running session {server or '(default)'!r} to restart", field="server")
            plan_mounts(s, self.storage, p.username, requested)  # 400/403 with the reason, nothing stopped

        await self.run(check, readonly=True)
        if not hub:
            raise Unavailable("restarting a session needs the hub's API: this service runs without "
                              "JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN")
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(None, shell.server_model, hub[0], hub[1], p.username, server)
        if model is None:
            raise Conflict(f"the hub has no server {server or '(default)'!r} of yours", field="server")
        options = dict(model.get("user_options") or {})
        had = options.get("vfolders") or []
        had = [v.strip() for v in had.split(",")] if isinstance(had, str) else list(had)
        options["vfolders"] = list(dict.fromkeys([*(v for v in had if v), *requested]))
        await self.run(lambda s: plan_mounts(s, self.storage, p.username, options["vfolders"]), readonly=True)
        await self.run(lambda s: None, readonly=False)  # the audit row, before the server goes
        loop.create_task(self._restart(hub, p.username, server, options))
        base = self.settings.get("service_prefix", "/services/backendai/").split("services/")[0]
        # JupyterHub's spawn-pending page of a default server has no trailing slash (that one is a 404)
        pending = f"{base}hub/spawn-pending/{quote(p.username, safe='')}" + (f"/{quote(server, safe='')}" if server
                                                                              else "")
        self.write_json({"status": "restarting", "server": server, "vfolders": options["vfolders"],
                         "next_url": pending}, 202)

    @staticmethod
    async def _restart(hub, user: str, server: str, options: dict) -> None:
        await asyncio.sleep(RESTART_DELAY)
        loop = asyncio.get_running_loop()
        try:
            code = await asyncio.wait_for(loop.run_in_executor(None, shell.restart_server, hub[0], hub[1], user,
                                                               server, options), shell.STOP_WAIT + 60)
            log.info("session %s/%s restarted with vfolders %s: hub answered %s", user, server,
                     ", ".join(options["vfolders"]), code)
        except Exception as e:  # noqa: BLE001 - nobody waits for this answer: the log says why
            log.warning("restarting session %s/%s with vfolders %s failed: %s", user, server,
                        ", ".join(options["vfolders"]), getattr(e, "message", e))


_STR = {"type": "string"}
_INT = {"type": "integer"}
_GRANT = {"upload_id": _STR, "url": _STR, "expires_at": _STR, "path": _STR, "length": _INT, "offset": _INT,
          "complete": {"type": "boolean"},
          "parts": {"type": "array", "items": {"type": "object", "properties": {
              "upload_id": _STR, "url": _STR, "start": _INT, "end": _INT, "offset": _INT}}}}
SCHEMAS = {
    "UploadGrant": _GRANT,
    "DownloadGrant": {"url": _STR, "expires_at": _STR, "name": _STR, "directory": {"type": "boolean"}},
    "SidebarRestart": {"status": _STR, "server": _STR, "vfolders": {"type": "array", "items": _STR},
                       "next_url": _STR},
}
ROUTES = [
    Route(r"sidebar", SidebarHandler, tag="vfolders", ops={"get": op(
        summary="Every folder you reach, with its mount state in your session and the actions allowed",
        query=("server",))}),
    Route(r"sidebar/restart", RestartHandler, tag="vfolders", ops={"post": op(
        status="202", answer="SidebarRestart", summary="Restart your session with these vfolders mounted too",
        body={"vfolders": {"type": "array", "items": _STR}, "server": _STR},
        errors={"502": "the hub refused or is unreachable", "503": "the service has no hub API to ask"})}),
    Route(r"vfolders/([^/]+)/upload-grants", UploadGrantHandler, ("vfolder",), tag="vfolders", ops={"post": op(
        status="201", answer="UploadGrant", summary="A tus upload and a short-lived URL for it (or a fresh URL)",
        body={"path": _STR, "size": {"type": "integer", "minimum": 0}, "overwrite": {"type": "boolean"},
              "parts": {"type": "integer", "minimum": 1, "maximum": 16}, "upload_id": _STR},
        errors={"413": "the upload does not fit in the folder's quota"})}),
    Route(r"vfolders/([^/]+)/download-grants", DownloadGrantHandler, ("vfolder",), tag="vfolders", ops={"post": op(
        status="201", answer="DownloadGrant", summary="A short-lived URL to download a file or a directory",
        body={"path": _STR, "archive": {"type": "string", "enum": ["zip", "tar"]}})}),
]
