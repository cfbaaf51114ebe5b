"""REST resource: vfolder downloads — a file (``Range`` supported) or a directory as a tar or zip stream."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import quote

from tornado import iostream
from tornado.log import app_log

from .. import host_permissions as H
from ..errors import InvalidInput, RangeNotSatisfiable
from ..vfolders import downloads
from .routes import Route
from .vfolder_base import VFolderBase, op


class DownloadHandler(VFolderBase):
    """A file (``Range`` supported) or a directory as a tar (default) or zip stream."""

    host_perm = H.DOWNLOAD_FILE
    default_archive = "tar"

    def download_path(self) -> str:
        return self.get_query_argument("path", "")

    async def get(self, ref):
        path = self.download_path()
        fmt = self.get_query_argument("archive", self.default_archive)
        if fmt not in downloads.ARCHIVES:
            raise InvalidInput(f"archive: {fmt!r} is not one of tar, zip", field="archive")

        def work(s):
            _, _, root = self.root_for(s, ref, "read")
            return (root, *downloads.open_download(root, path))

        root, rel, fd, size = await self.run(work)
        loop = asyncio.get_running_loop()
        if fd is None:
            await self._archive(root, rel, fmt)
            return
        ahead: asyncio.Future | None = None
        try:
            rng = downloads.parse_range(self.request.headers.get("Range"), size)
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
            chunks = downloads.read_range(fd, first, last)
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
        if isinstance(exc, RangeNotSatisfiable):
            self.set_header("Content-Range", f"bytes */{exc.size}")  # send_error cleared the headers
        super().write_error(status_code, **kwargs)

    async def _archive(self, root: str, rel: str, fmt: str) -> None:
        name = (os.path.basename(rel) or "vfolder") + "." + fmt
        self.set_header("Content-Type", downloads.ARCHIVES[fmt])
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")
        q, cancelled, thread = downloads.archive_producer(root, rel, fmt)
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


ROUTES = [
    Route(r"vfolders/([^/]+)/download", DownloadHandler, ("vfolder",), tag="vfolders", ops={"get": op(
        binary="the file, or the directory as an archive", query=("path", "archive"),
        headers=({"name": "Range", "in": "header", "schema": {"type": "string"}},),
        errors={"416": "the range is outside the file"},
        responses={"206": {"description": "the requested byte range"}})}),
]
