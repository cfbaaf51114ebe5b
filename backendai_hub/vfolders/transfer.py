"""File transfer: resumable uploads (tus 1.0 core + creation + termination), ranged and archived downloads.

Uploads stream to ``<folder>/.upload/<id>.part`` (inside the folder, so a loopback quota counts
them) beside ``<id>.json`` (target path, declared length, owner). The offset is the part file's
size, so an upload interrupted at any byte resumes there, even after a service restart. The last
PATCH moves the part file to its target. Memory stays bounded: bodies are written as they arrive,
downloads are read in :data:`CHUNK` pieces, archives are produced by a thread into a bounded queue.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import io
import json
import os
import queue
import re
import stat as st
import tarfile
import threading
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass
from typing import Iterator

from ..errors import Conflict, InvalidInput, NotFound, TenancyError
from . import paths
from .files import RESERVED
from .storage import UPLOAD_DIR, StorageHosts, usage

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination"
CHUNK = 1 << 20
MAX_UPLOAD = 1 << 42  # 4 TiB: what one upload may declare
UPLOAD_TTL = 24 * 3600.0  # an upload no byte reached for this long is abandoned (its reservation freed)
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


class QuotaExceeded(TenancyError):
    status = 413


class RangeNotSatisfiable(TenancyError):
    status = 416

    def __init__(self, message: str, size: int):
        super().__init__(message, field="Range")
        self.size = size


@dataclass
class Upload:
    id: str
    path: str  # target, relative to the folder root
    length: int
    user: str
    overwrite: bool = False
    created: float = 0.0


def _dir(root: str) -> str:
    return os.path.join(root, UPLOAD_DIR)


def parse_metadata(header: str | None) -> dict[str, str]:
    """tus ``Upload-Metadata``: ``key base64value,key2 base64value2``."""
    out: dict[str, str] = {}
    if not header:
        return out
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition(" ")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput(f"Upload-Metadata: the value of {key!r} is not base64 UTF-8",
                               field="Upload-Metadata") from None
    return out


def parse_length(value: str | None, field: str) -> int:
    if value is None or not value.strip().isascii() or not value.strip().isdigit() or len(value.strip()) > 20:
        raise InvalidInput(f"{field}: must be a byte count (0 or more)", field=field)
    n = int(value.strip())
    if n > MAX_UPLOAD:
        raise InvalidInput(f"{field}: at most {MAX_UPLOAD} bytes", field=field)
    return n


def remaining_quota(storage: StorageHosts, host: str, vfid: str, quota: int | None, root: str) -> int | None:
    """Bytes the folder may still take: quota minus usage minus what pending uploads have reserved."""
    limits = []
    if quota is not None:
        used, _ = usage(root)
        limits.append(quota - used - reserved(root))
    free = storage.free_bytes(host, vfid)
    if free is not None:
        limits.append(free - reserved(root))
    return max(0, min(limits)) if limits else None


def reserved(root: str, now: float | None = None) -> int:
    """Bytes declared by pending uploads and not written yet. Uploads untouched for
    :data:`UPLOAD_TTL` are abandoned: they are removed here and reserve nothing."""
    total, now = 0, now or time.time()
    try:
        names = os.listdir(_dir(root))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for name in names:
        if name.endswith(".json") and _ID_RE.match(name[:-5]):
            try:
                up = _read(root, name[:-5])
                if _expired(root, up, now):
                    abort_upload(root, up)
                    continue
                total += max(0, up.length - _part_size(root, up.id))
            except (NotFound, OSError, ValueError):
                continue
    return total


def _expired(root: str, up: Upload, now: float) -> bool:
    """No byte arrived for :data:`UPLOAD_TTL` seconds."""
    try:
        touched = os.stat(os.path.join(_dir(root), f"{up.id}.part"), follow_symlinks=False).st_mtime
    except FileNotFoundError:
        touched = up.created
    return now - max(touched, up.created) > UPLOAD_TTL


def _part_size(root: str, upload_id: str) -> int:
    return os.stat(os.path.join(_dir(root), f"{upload_id}.part"), follow_symlinks=False).st_size


def _read(root: str, upload_id: str) -> Upload:
    try:
        fd = paths.open_file(root, f"{UPLOAD_DIR}/{upload_id}.json", os.O_RDONLY, field="upload")
    except (NotFound, InvalidInput):
        raise NotFound(f"unknown upload {upload_id!r}", field="upload") from None
    with os.fdopen(fd) as f:
        try:
            data = json.load(f)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            return Upload(**data)
        except (ValueError, TypeError):  # damaged, or written by someone else than this service
            raise NotFound(f"unknown upload {upload_id!r} (its record is damaged)", field="upload") from None


def create_upload(storage: StorageHosts, root: str, *, host: str, vfid: str, quota: int | None, path: str,
                  length: int, user: str, overwrite: bool = False) -> Upload:
    rel = paths.clean(path, allow_root=False)
    with paths.open_parent(root, rel, reserved=RESERVED) as (fd, name):
        try:
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            if st.S_ISDIR(mode):
                raise Conflict(f"path: {rel!r} is a directory", field="path")
            if not overwrite:
                raise Conflict(f"path: {rel!r} already exists; upload with overwrite", field="path")
        except FileNotFoundError:
            pass
    left = remaining_quota(storage, host, vfid, quota, root)
    if left is not None and length > left:
        raise QuotaExceeded(f"an upload of {length} bytes does not fit in the vfolder's quota: "
                            f"{left} bytes left of {quota if quota is not None else 'the filesystem'}")
    updir = _dir(root)
    try:
        os.mkdir(updir, 0o700)  # only the service (root) reads pending uploads
    except FileExistsError:
        if not st.S_ISDIR(os.lstat(updir).st_mode):
            raise Conflict(f"{UPLOAD_DIR!r} in this vfolder is not the upload directory (something else has that "
                           f"name); remove or rename it from a session", field="path") from None
    up = Upload(id=uuid.uuid4().hex, path=rel, length=length, user=user, overwrite=overwrite, created=time.time())
    try:
        pfd = paths.open_file(root, f"{UPLOAD_DIR}/{up.id}.part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except NotFound:  # the last pending upload finished and took the directory along: once more
        os.mkdir(updir, 0o700)
        pfd = paths.open_file(root, f"{UPLOAD_DIR}/{up.id}.part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(pfd)
    jfd = paths.open_file(root, f"{UPLOAD_DIR}/{up.id}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(jfd, "w") as f:
        json.dump(asdict(up), f)
    if length == 0:
        finish_upload(storage, root, up)
    return up


def load_upload(root: str, upload_id: str, user: str) -> tuple[Upload, int]:
    """The upload and its offset; uploads of other users (and abandoned ones) read as unknown."""
    if not isinstance(upload_id, str) or not _ID_RE.match(upload_id):
        raise NotFound(f"unknown upload {upload_id!r}", field="upload")
    up = _read(root, upload_id)
    if up.user != user:
        raise NotFound(f"unknown upload {upload_id!r}", field="upload")
    if _expired(root, up, time.time()):
        abort_upload(root, up)
        raise NotFound(f"unknown upload {upload_id!r} (abandoned for {UPLOAD_TTL / 3600:.0f} h)", field="upload")
    try:
        return up, _part_size(root, up.id)
    except FileNotFoundError:
        raise NotFound(f"unknown upload {upload_id!r}", field="upload") from None


class UploadLocked(TenancyError):
    status = 423


def open_part(root: str, up: Upload) -> tuple[int, int]:
    """The part file for appending, locked for this request, and its size (the offset). A second request
    on the same upload while one writes is refused (two writers would interleave their bytes)."""
    fd = paths.open_file(root, f"{UPLOAD_DIR}/{up.id}.part", os.O_WRONLY | os.O_APPEND, field="upload")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UploadLocked(f"upload {up.id!r} is being written by another request; resume once it has ended "
                           f"(HEAD tells the offset)", field="upload") from None
    return fd, os.fstat(fd).st_size


_IOV_MAX = os.sysconf("SC_IOV_MAX")


def write_all(fd: int, data) -> None:
    """Write ``data`` (bytes, or a list of bytes: one writev) completely; a full folder is a 413 (quota),
    not a server error."""
    views = [memoryview(b) for b in (data if isinstance(data, list) else [data]) if len(b)]
    try:
        while views:
            n = os.writev(fd, views[:_IOV_MAX])
            while n:
                if n >= len(views[0]):
                    n -= len(views.pop(0))
                else:
                    views[0], n = views[0][n:], 0
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise QuotaExceeded("the vfolder is full: its quota is reached") from None
        raise


def finish_upload(storage: StorageHosts, root: str, up: Upload) -> None:
    """Move the complete part file to its target (the entry itself, never through a link)."""
    with paths.open_dir(root, UPLOAD_DIR, field="upload") as ufd, \
            paths.open_parent(root, up.path, reserved=RESERVED) as (dfd, name):
        pfd = os.open(f"{up.id}.part", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ufd)
        try:
            size = os.fstat(pfd).st_size
            os.fsync(pfd)  # a 204 for the last piece means the file is on disk, not in the page cache
        finally:
            os.close(pfd)
        if size != up.length:
            raise Conflict(f"upload {up.id!r} holds {size} bytes, not the {up.length} it declared", field="upload")
        try:
            existing = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and not up.overwrite:
            raise Conflict(f"path: {up.path!r} was created meanwhile; upload with overwrite", field="path")
        if existing is not None and st.S_ISDIR(existing.st_mode):
            raise Conflict(f"path: {up.path!r} became a directory meanwhile; move it away or abort the upload",
                           field="path")
        os.rename(f"{up.id}.part", name, src_dir_fd=ufd, dst_dir_fd=dfd)
        storage.chown(name, dir_fd=dfd)
        os.fsync(dfd)  # and so is its name
        os.unlink(f"{up.id}.json", dir_fd=ufd)
    _drop_upload_dir(root)


def abort_upload(root: str, up: Upload) -> None:
    with paths.open_dir(root, UPLOAD_DIR, field="upload") as ufd:
        for suffix in (".part", ".json"):
            try:
                os.unlink(f"{up.id}{suffix}", dir_fd=ufd)
            except FileNotFoundError:
                pass
    _drop_upload_dir(root)


def _drop_upload_dir(root: str) -> None:
    """Remove the upload directory once no upload is pending (as Backend.AI's storage proxy does), so
    sessions do not see it."""
    try:
        os.rmdir(_dir(root))
    except OSError:
        pass  # uploads still pending (or it went meanwhile)


# -- downloads --------------------------------------------------------------------------------------

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
