"""Downloads: a file's byte ranges, and a directory as a tar or zip stream produced on a thread."""

from __future__ import annotations

import io
import os
import queue
import stat as st
import tarfile
import threading
import time
import zipfile
from typing import Iterator

from ..errors import InvalidInput, NotFound, RangeNotSatisfiable
from . import paths
from .files import RESERVED
from .storage import UPLOAD_DIR

CHUNK = 1 << 20  # files are read, and archives handed over, in pieces of this size
ARCHIVES = {"tar": "application/x-tar", "zip": "application/zip"}  # format -> content type


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as inclusive (first, last); None: send everything (absent, several, or odd units)."""
    if not header:
        return None
    header = header.strip()
    if not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0 or size == 0:
                raise RangeNotSatisfiable(f"Range: {spec!r} selects nothing of {size} bytes", size)
            return max(0, size - n), size - 1
        a = int(first)
        b = int(last) if last else size - 1
    except ValueError:
        return None
    if a >= size:
        raise RangeNotSatisfiable(f"Range: starts at {a}, the file has {size} bytes", size)
    if b < a:
        return None
    return a, min(b, size - 1)


def read_range(fd: int, first: int, last: int) -> Iterator[bytes]:
    pos = first
    while pos <= last:
        data = os.pread(fd, min(CHUNK, last - pos + 1), pos)
        if not data:
            return
        pos += len(data)
        yield data


class _QueueWriter(io.RawIOBase):
    """A write-only stream into a bounded queue, in CHUNK pieces (what tarfile/zipfile write to)."""

    def __init__(self, q: queue.Queue, cancelled: threading.Event):
        self.q, self.cancelled, self.pos, self.buf = q, cancelled, 0, bytearray()

    def writable(self):
        return True

    def write(self, b) -> int:
        n = len(b)
        self.buf += b
        self.pos += n
        if len(self.buf) >= CHUNK:
            self.flush()
        return n

    def flush(self):
        if not self.buf:
            return
        data = bytes(self.buf)
        self.buf.clear()
        while True:
            if self.cancelled.is_set():
                raise BrokenPipeError("download cancelled")
            try:
                self.q.put(data, timeout=0.5)
                return
            except queue.Full:
                continue

    def tell(self):  # zipfile asks where it is in an unseekable stream
        return self.pos


def _entries(root: str, base_rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """(path relative to the root, lstat) of base_rel and everything below it, links not followed."""
    top = paths.resolve(root, base_rel)
    yield base_rel, os.lstat(top)
    stack = [base_rel]
    while stack:
        rel = stack.pop()
        try:
            with paths.open_dir(root, rel) as fd:
                names = sorted(os.listdir(fd))
                stats = []
                for name in names:
                    if not rel and name == UPLOAD_DIR:
                        continue
                    try:
                        stats.append((name, os.stat(name, dir_fd=fd, follow_symlinks=False)))
                    except FileNotFoundError:
                        continue
        except (NotFound, InvalidInput):
            continue
        for name, s in stats:
            child = f"{rel}/{name}" if rel else name
            yield child, s
            if st.S_ISDIR(s.st_mode):
                stack.append(child)


def _open_checked(root: str, rel: str, s: os.stat_result):
    """Open a regular file only if it is still the entry we listed (no swap for a link meanwhile)."""
    try:
        fd = paths.open_file(root, rel, os.O_RDONLY)
    except (NotFound, InvalidInput):
        return None
    fs = os.fstat(fd)
    if (fs.st_dev, fs.st_ino) != (s.st_dev, s.st_ino):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _exactly(f, size: int) -> Iterator[bytes]:
    """``size`` bytes of ``f`` in CHUNK pieces: a file that grew meanwhile is cut, one that shrank is
    padded with zeros (as GNU tar does), so the archive stays well-formed while sessions write."""
    left = size
    while left > 0:
        data = f.read(min(CHUNK, left)) or b"\0" * min(CHUNK, left)
        left -= len(data)
        yield data


class _ExactReader(io.RawIOBase):
    """What tarfile reads a member from: :func:`_exactly` as a file."""

    def __init__(self, f, size: int):
        self._it, self._buf = _exactly(f, size), b""

    def readable(self):
        return True

    def read(self, n=-1):
        while (n < 0 or len(self._buf) < n) and (piece := next(self._it, None)) is not None:
            self._buf += piece
        out, self._buf = (self._buf, b"") if n < 0 else (self._buf[:n], self._buf[n:])
        return out


def _zip_name(name: str) -> str:
    # zip stores UTF-8: a file name that is not UTF-8 on disk (escaped by Python) is shown with U+FFFD
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def write_archive(root: str, rel: str, fmt: str, out) -> None:
    """Write directory ``rel`` of the folder as a tar or zip stream to ``out`` (names relative to it)."""
    prefix = os.path.basename(rel) or "vfolder"

    def arcname(path: str) -> str:
        sub = path[len(rel):].lstrip("/") if rel else path
        return f"{prefix}/{sub}" if sub else prefix

    if fmt == "tar":
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for path, s in _entries(root, rel):
                info = tarfile.TarInfo(arcname(path))
                info.mtime, info.mode = int(s.st_mtime), st.S_IMODE(s.st_mode)
                if st.S_ISDIR(s.st_mode):
                    info.type = tarfile.DIRTYPE
                    tf.addfile(info)
                elif st.S_ISLNK(s.st_mode):
                    with paths.open_parent(root, path) as (fd, name):
                        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=fd)
                    tf.addfile(info)
                elif st.S_ISREG(s.st_mode):
                    f = _open_checked(root, path, s)
                    if f is None:
                        continue
                    with f:
                        info.size = s.st_size
                        tf.addfile(info, _ExactReader(f, s.st_size))
        return
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path, s in _entries(root, rel):
            name = _zip_name(arcname(path))
            if st.S_ISDIR(s.st_mode):
                zf.writestr(zipfile.ZipInfo(name + "/", time.gmtime(s.st_mtime)[:6]), b"")
            elif st.S_ISREG(s.st_mode):
                f = _open_checked(root, path, s)
                if f is None:
                    continue
                info = zipfile.ZipInfo(name, time.gmtime(max(s.st_mtime, 315532800))[:6])
                info.file_size = s.st_size
                with f, zf.open(info, "w", force_zip64=s.st_size > 0x7FFFFFFF) as w:
                    for data in _exactly(f, s.st_size):
                        w.write(data)


def archive_producer(root: str, rel: str, fmt: str, depth: int = 8):
    """(queue, cancel event, thread): the thread fills the queue with chunks, then None (or an exception)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    cancelled = threading.Event()

    def run():
        try:
            w = _QueueWriter(q, cancelled)
            write_archive(root, rel, fmt, w)
            w.flush()
            end = None
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            end = e
        while not cancelled.is_set():
            try:
                q.put(end, timeout=0.5)
                return
            except queue.Full:
                continue

    t = threading.Thread(target=run, name="vfolder-archive", daemon=True)
    t.start()
    return q, cancelled, t


def open_download(root: str, path: str) -> tuple[str, int | None, int | None]:
    """(the cleaned path, then a descriptor and the size of a file, or None, None for a directory).
    Uploads in progress are never reached, however the path is spelled (through a link as well)."""
    full = paths.resolve(root, path, reserved=RESERVED)
    if os.path.isdir(full):
        return paths.clean(path), None, None
    fd = paths.open_file(root, path, os.O_RDONLY, reserved=RESERVED)
    return paths.clean(path), fd, os.fstat(fd).st_size
