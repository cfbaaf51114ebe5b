"""REST resource: tus uploads into a vfolder (create, offset, append, abort); the bytes go to the part writer."""

from __future__ import annotations

from urllib.parse import urlsplit

from tornado import iostream, web

from .. import host_permissions as H
from ..errors import Forbidden, InvalidInput, PreconditionFailed, UnsupportedMediaType
from ..vfolders import upload_records, uploads
from ..vfolders.fields import HEX32_RE
from .routes import Route
from .vfolder_base import VFolderBase, flag, op


def _content_length(headers) -> int | None:
    """The body's length when the request says it plainly (one decimal Content-Length, no chunking)."""
    value = headers.get("Content-Length")
    if value is None or "Transfer-Encoding" in headers or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _body_stream(request) -> iostream.IOStream | None:
    """The connection's stream, where a body can be read from it directly (tornado's HTTP/1)."""
    stream = getattr(request.connection, "stream", None)
    return stream if isinstance(stream, iostream.IOStream) and not stream.closed() else None


def parse_concat(value: str | None) -> tuple[str, list[str]]:
    """tus ``Upload-Concat``: ``partial``, or ``final;<url> <url> ...`` (the partial uploads' URLs, in
    order: their last path segment is the upload's id); ``("", [])`` when absent."""
    if value is None:
        return "", []
    value = value.strip()
    if value == "partial":
        return "partial", []
    kind, sep, urls = value.partition(";")
    if kind.strip() != "final" or not sep:
        raise InvalidInput("Upload-Concat: must be 'partial' or 'final;<url> <url> ...'", field="Upload-Concat")
    ids = []
    for url in urls.split():
        upload_id = urlsplit(url).path.rstrip("/").rpartition("/")[2]
        if not HEX32_RE.match(upload_id):
            raise InvalidInput(f"Upload-Concat: {url!r} is not the URL of an upload", field="Upload-Concat")
        ids.append(upload_id)
    if not ids:
        raise InvalidInput("Upload-Concat: a final upload names its partial uploads", field="Upload-Concat")
    return "final", ids


def _tus_headers(handler: web.RequestHandler) -> None:
    handler.set_header("Tus-Resumable", uploads.TUS_VERSION)
    handler.set_header("Cache-Control", "no-store")


class _Recording:
    async def _record_now(self) -> None:
        """Write the deferred audit row in a transaction of its own, before the answer (as every write's
        row is committed before its answer), not after it."""
        self.audit_deferred = False
        await self.run(lambda s: None)


class UploadsHandler(_Recording, VFolderBase):
    """``POST``: create a tus upload (``Upload-Length``; the target in ``Upload-Metadata: path <b64>``
    or ``?path=``); answers 201 with its ``Location``. tus concatenation: ``Upload-Concat: partial``
    creates a part with no target; ``Upload-Concat: final;<urls>`` (no ``Upload-Length``) joins the
    caller's partial uploads into the target, at once when they are complete, else when the last
    one is."""

    audit_ops = {"POST": "upload-start"}

    host_perm = H.UPLOAD_FILE
    may_revoke_access = False  # writes files, grants nothing

    async def post(self, ref):
        _tus_headers(self)
        version = self.request.headers.get("Tus-Resumable")
        if version is not None and version != uploads.TUS_VERSION:
            self.set_header("Tus-Version", uploads.TUS_VERSION)
            raise PreconditionFailed(f"Tus-Resumable: only {uploads.TUS_VERSION} is supported")
        concat, part_ids = parse_concat(self.request.headers.get("Upload-Concat"))
        if concat == "final":
            if "Upload-Length" in self.request.headers:
                raise InvalidInput("Upload-Length: a final upload's length is its parts' sum; leave it out",
                                   field="Upload-Length")
            length = 0
        else:
            length = uploads.parse_length(self.request.headers.get("Upload-Length"), "Upload-Length")
        meta = uploads.parse_metadata(self.request.headers.get("Upload-Metadata"))
        path = self.get_query_argument("path", None) or meta.get("path") or meta.get("filename")
        if not path and concat != "partial":
            raise InvalidInput("path: name the target in Upload-Metadata (path) or ?path=", field="path")
        overwrite = self.flag("overwrite") or flag(meta.get("overwrite"), "overwrite")
        user = self.principal.username

        def work(s):
            vf, _, root = self.root_for(s, ref, "write")
            if concat == "final":
                return uploads.create_final(self.storage, root, host=vf.host, vfid=vf.id, path=path, user=user,
                                            part_ids=part_ids, overwrite=overwrite)
            up = uploads.create_upload(self.storage, root, host=vf.host, vfid=vf.id, quota=vf.quota, path=path or "",
                                       length=length, user=user, overwrite=overwrite, concat=concat)
            return up, up.length == 0 and not concat

        if concat == "final":
            self.audit_deferred = True  # recorded once it is known whether the file is in place
        up, complete = await self.run(work)
        if concat == "final":
            if complete and self.audit_event is not None:
                self.audit_event.operation = "upload"  # its parts were complete: the file arrived now
            await self._record_now()
        location = f"{self.request.path.rstrip('/')}/{up.id}"
        self.set_header("Location", location)
        if concat != "final":  # a final upload takes no bytes of its own
            self.set_header("Upload-Offset", "0")
        self.write_json({"id": up.id, "location": location, "path": up.path, "length": up.length,
                         "offset": up.length if complete else 0, "complete": complete}, 201)

    async def options(self, ref):
        _tus_headers(self)
        self.set_header("Tus-Version", uploads.TUS_VERSION)
        self.set_header("Tus-Extension", uploads.TUS_EXTENSIONS)
        self.set_header("Tus-Max-Size", str(uploads.MAX_UPLOAD))
        self.set_status(204)
        self.finish()


@web.stream_request_body
class UploadHandler(_Recording, VFolderBase):
    """``HEAD``: the offset; ``PATCH``: append at ``Upload-Offset`` (streamed to disk); ``DELETE``: abort."""

    host_perm = H.UPLOAD_FILE
    may_revoke_access = False
    writer: uploads.PartWriter | None = None  # PATCH: where the body goes
    # one audit row per upload's end (the PATCH that completes it) or abort, not one per chunk;
    # a chunk that is refused is recorded
    audit_ops = {"PATCH": "upload", "DELETE": "upload-abort"}

    async def prepare(self):
        self.audit_deferred = self.request.method == "PATCH"
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
        offset = uploads.parse_length(self.request.headers.get("Upload-Offset"), "Upload-Offset")
        user = self.principal.username

        def work(s):
            vf, _, root = self.root_for(s, ref, "write")
            up, _ = upload_records.load_upload(root, upload_id, user)
            if up.is_final:
                raise Forbidden(f"upload {up.id!r} is a final upload: its bytes go to its partial uploads",
                                field="upload")
            full = self.storage.full_error(vf.host, vf.id)
            return root, full, uploads.PartWriter.open(root, up, offset, full)  # locked: one writer per upload

        self._root, self._full, self.writer = await self.run(work)
        stream, length = _body_stream(self.request), _content_length(self.request.headers)
        if stream is not None and length is not None and length <= self.writer.room:
            await self._receive(stream, length)
            return
        # the body may not run past the declared length (tornado answers 400 and closes otherwise)
        self.request.connection.set_max_body_size(self.writer.room)

    async def _receive(self, stream: iostream.IOStream, length: int) -> None:
        """The body, read from the connection straight into two buffers that take turns: one fills
        while the writer writes the other (tornado's own body reading copies each piece twice more
        and allocates a buffer per read). Tornado then reads no body (``Content-Length: 0``), and a
        dropped connection keeps what arrived, as ``on_connection_close`` does on tornado's path."""
        headers = self.request.headers
        headers["Content-Length"] = "0"
        if headers.get("Expect", "").lower() == "100-continue":
            del headers["Expect"]
            stream.write(b"HTTP/1.1 100 (Continue)\r\n\r\n")
        size = min(length, uploads.PartWriter.FLUSH_AT)
        buffers, turn, left = (bytearray(size), bytearray(size)), 0, length
        while left:
            view, filled = memoryview(buffers[turn])[:min(size, left)], 0
            try:
                while filled < len(view):
                    filled += await stream.read_into(view[filled:], partial=True)
            except iostream.StreamClosedError:
                if filled:
                    await self.writer.feed(view[:filled])
                return
            left -= filled
            await self.writer.feed(view)  # returns once the other buffer's write is done
            turn ^= 1

    async def data_received(self, chunk: bytes):
        if self.writer is not None:
            await self.writer.feed(chunk)

    def on_connection_close(self):
        # what arrived stays on disk: HEAD tells the client where to resume
        if self.writer is not None:
            self.writer.close()
        super().on_connection_close()

    def on_finish(self):
        if self.writer is not None:
            self.writer.close()
        super().on_finish()

    def upload_location(self, upload_id: str) -> str | None:
        """The URL of another upload of this folder (None on a token route, whose URL names none)."""
        return f"{self.request.path.rstrip('/').rpartition('/')[0]}/{upload_id}"

    async def head(self, ref, upload_id):
        user = self.principal.username

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            return upload_records.load_upload(root, upload_id, user)

        up, offset = await self.run(work)
        if up.is_final:  # its offset: what its parts hold (tus leaves it out; the sidebar shows it)
            locations = [self.upload_location(part) for part in up.parts or []]
            if all(locations):
                self.set_header("Upload-Concat", "final;" + " ".join(locations))
        elif up.concat:
            self.set_header("Upload-Concat", up.concat)
        self.set_header("Upload-Offset", str(offset))
        self.set_header("Upload-Length", str(up.length))
        self.set_status(200)
        self.finish()

    async def patch(self, ref, upload_id):
        writer, root = self.writer, self._root
        offset = await writer.finish()
        def finish(s):
            self.root_for(s, ref, "write")
            return uploads.finish_upload(self.storage, root, writer.up, self._full)

        if not writer.complete:
            self.audit_event = None  # a chunk: the upload's last one is recorded
        elif not writer.up.concat:
            self.audit_deferred = False  # recorded in the transaction that finishes it
            await self.run(finish)
        elif await self.run(finish):  # a part: the one whose end joined the file records the upload
            await self._record_now()
        else:
            self.audit_event = None
        self.set_header("Upload-Offset", str(offset))
        self.set_status(204)
        self.finish()

    async def delete(self, ref, upload_id):
        user = self.principal.username

        def work(s):
            _, _, root = self.root_for(s, ref, "write")
            up, _ = upload_records.load_upload(root, upload_id, user)
            upload_records.abort_upload(root, up)

        await self.run(work)
        self.set_status(204)
        self.finish()


_STR = {"type": "string"}
ROUTES = [
    Route(r"vfolders/([^/]+)/uploads", UploadsHandler, ("vfolder",), tag="vfolders", ops={"post": op(
        status="201", query=("path", "overwrite"),
        headers=({"name": "Upload-Length", "in": "header", "required": True,
                  "schema": {"type": "integer", "minimum": 0}},
                 {"name": "Upload-Metadata", "in": "header", "schema": _STR},
                 {"name": "Tus-Resumable", "in": "header",
                  "schema": {"type": "string", "enum": [uploads.TUS_VERSION]}}),
        errors={"412": "unsupported Tus-Resumable version", "413": "the upload does not fit in the folder's quota",
                "507": "the storage host is full"})}),
    Route(r"vfolders/([^/]+)/uploads/([^/]+)", UploadHandler, ("vfolder", "upload"), tag="vfolders",
          ops={"patch": op(status="204", errors={"413": "the folder's quota is reached",
                                                 "507": "the storage host is full: what was written is kept"}),
               "delete": op(status="204")}),
]
