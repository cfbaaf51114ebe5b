"""Resumable uploads (tus 1.0 core, creation, termination, concatenation): creating uploads, the part
writer, finishing, and the concatenation of partial uploads into their final one. Their records (what
an upload is, where it lives, removing it) are :mod:`.upload_records`.

The last PATCH moves the part file to its target. Memory stays bounded: bodies are written as they
arrive. Concatenation (a file sent as several requests side by side, as a browser needs to fill the
link): when the last byte of the last partial arrives (or the final is created after its partials are
complete), the partials are joined in the kernel (copy_file_range) into the first one's part file,
which then moves to the target as a plain upload's does. The joining holds the upload directory's
lock, so of two partials ending at once one joins and the other waits and finds the file in place.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import fcntl
import os
import stat as st
import time
import uuid
from typing import Callable

from ..errors import Conflict, InvalidInput, NotFound, QuotaExceeded, TenancyError, UploadLocked
from . import paths
from .files import RESERVED
from .storage import UPLOAD_DIR, StorageHosts
from .upload_records import (Upload, abort_one, dir_of, drop_upload_dir, load_upload, locked, partials,
                             read_record, remaining_quota, save_record, trusted)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,concatenation"
MAX_PARTS = 16  # partial uploads one final upload may join
PART_ALIGN = 1 << 20  # the parts an upload grant splits a file into start on MiB boundaries
MAX_UPLOAD = 1 << 42  # 4 TiB: what one upload may declare
FULL = (errno.ENOSPC, errno.EDQUOT)

# what a write that found no space raises: the folder's quota reached, or its storage host full
# (StorageHosts.full_error says which for a folder)
FullError = Callable[[], TenancyError]


def _quota_reached() -> TenancyError:
    return QuotaExceeded("the vfolder is full: its quota is reached")


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


def _target(root: str, path: str, overwrite: bool) -> str:
    """The cleaned target path, refused when it is a directory, or exists and ``overwrite`` is off."""
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
    return rel


def _check_room(storage: StorageHosts, root: str, host: str, vfid: str, quota: int | None, length: int) -> int | None:
    """What is left after ``length`` more bytes (None: no limit known); not enough raises."""
    left = remaining_quota(storage, host, vfid, quota, root)
    if left is not None and length > left:
        raise QuotaExceeded(f"an upload of {length} bytes does not fit in the vfolder's quota: "
                            f"{left} bytes left of {quota if quota is not None else 'the filesystem'}")
    return None if left is None else left - length


def _make(storage: StorageHosts, root: str, host: str, vfid: str, ups: list[Upload]) -> None:
    """The records of ``ups`` and the part files of those that take bytes: all of them, or (the storage
    full) none."""
    updir = dir_of(root)
    made: list[Upload] = []
    try:
        try:
            os.mkdir(updir, 0o700)  # only the service (root) reads pending uploads
        except FileExistsError:
            if not trusted(os.lstat(updir)):
                raise Conflict(f"{UPLOAD_DIR!r} in this vfolder is not the upload directory (something else has "
                               f"that name); remove or rename it from a session", field="path") from None
        for up in ups:
            if not up.is_final:
                try:
                    pfd = paths.open_file(root, f"{UPLOAD_DIR}/{up.id}.part", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                          0o644)
                except NotFound:  # the last pending upload finished and took the directory along: once more
                    os.mkdir(updir, 0o700)
                    pfd = paths.open_file(root, f"{UPLOAD_DIR}/{up.id}.part", os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                          0o644)
                os.close(pfd)
            made.append(up)
            save_record(root, up, new=True)
    except OSError as e:
        if e.errno not in FULL:
            raise
        for up in made:
            try:
                abort_one(root, up.id)  # no record without its part file, nor the other way round
            except (NotFound, OSError):
                pass  # the upload directory itself could not be made
        drop_upload_dir(root)
        raise storage.full_error(host, vfid)() from None


def create_upload(storage: StorageHosts, root: str, *, host: str, vfid: str, quota: int | None, path: str,
                  length: int, user: str, overwrite: bool = False, concat: str = "") -> Upload:
    """A plain upload of ``length`` bytes to ``path``, or (``concat="partial"``) a partial one, which
    has no target until a final upload names it (:func:`create_final`)."""
    rel = _target(root, path, overwrite) if concat != "partial" else ""
    _check_room(storage, root, host, vfid, quota, length)
    return _start(storage, root, host, vfid, Upload(id=uuid.uuid4().hex, path=rel, length=length, user=user,
                                                    overwrite=overwrite, created=time.time(), concat=concat))


def _start(storage: StorageHosts, root: str, host: str, vfid: str, up: Upload) -> Upload:
    """Make a checked upload's record and part file; an empty plain upload is finished at once."""
    _make(storage, root, host, vfid, [up])
    if up.length == 0 and not up.concat:
        finish_upload(storage, root, up, full=storage.full_error(host, vfid))
    return up


def split(length: int, parts: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each part when ``length`` bytes go as up to ``parts`` requests: equal parts
    on :data:`PART_ALIGN` boundaries, the last one shorter; fewer parts when the file is small."""
    step = max(PART_ALIGN, -(-length // max(1, parts)) + PART_ALIGN - 1) // PART_ALIGN * PART_ALIGN
    return [(start, min(length, start + step)) for start in range(0, length, step)] or [(0, 0)]


def create_parts(storage: StorageHosts, root: str, *, host: str, vfid: str, quota: int | None, path: str,
                 length: int, user: str, overwrite: bool = False, parts: int = 1) -> tuple[Upload, list[Upload]]:
    """An upload of ``length`` bytes to ``path`` sent as up to ``parts`` partial uploads side by side:
    the final upload and its partials (the file's ``[start, end)`` each takes: :func:`split`). Joining
    needs room for the partials and the joined file at once (they share the folder's quota): where
    the folder lacks it, or for one part, it is a plain upload (no partials)."""
    rel = _target(root, path, overwrite)
    left = _check_room(storage, root, host, vfid, quota, length)
    bounds = split(length, min(max(1, parts), MAX_PARTS))
    if len(bounds) == 1 or (left is not None and left < length - bounds[0][1]):  # checked already: a plain one
        return _start(storage, root, host, vfid, Upload(id=uuid.uuid4().hex, path=rel, length=length, user=user,
                                                        overwrite=overwrite, created=time.time())), []
    now, final_id = time.time(), uuid.uuid4().hex
    partials = [Upload(id=uuid.uuid4().hex, path="", length=end - start, user=user, created=now, concat="partial",
                       final=final_id) for start, end in bounds]
    final = Upload(id=final_id, path=rel, length=length, user=user, overwrite=overwrite, created=now, concat="final",
                   parts=[p.id for p in partials])
    _make(storage, root, host, vfid, [*partials, final])
    return final, partials


def create_final(storage: StorageHosts, root: str, *, host: str, vfid: str, path: str, user: str,
                 part_ids: list[str], overwrite: bool = False) -> tuple[Upload, bool]:
    """The final upload joining the caller's partial uploads ``part_ids`` (in order) into ``path``, and
    whether the file is already in place (every partial was complete). A partial joins one final only."""
    rel = _target(root, path, overwrite)
    if not part_ids or len(part_ids) > MAX_PARTS:
        raise InvalidInput(f"Upload-Concat: name 1 to {MAX_PARTS} partial uploads", field="Upload-Concat")
    if len(set(part_ids)) != len(part_ids):
        raise InvalidInput("Upload-Concat: a partial upload is named twice", field="Upload-Concat")
    final = Upload(id=uuid.uuid4().hex, path=rel, length=0, user=user, overwrite=overwrite, created=time.time(),
                   concat="final", parts=list(part_ids))
    with locked(root):
        partials = [load_upload(root, pid, user)[0] for pid in part_ids]
        for p in partials:
            if p.concat != "partial":
                raise Conflict(f"Upload-Concat: upload {p.id!r} is not a partial upload (create it with "
                               f"Upload-Concat: partial)", field="Upload-Concat")
            if p.final is not None:
                raise Conflict(f"Upload-Concat: upload {p.id!r} is already part of upload {p.final!r}",
                               field="Upload-Concat")
        final.length = sum(p.length for p in partials)
        _make(storage, root, host, vfid, [final])
        for p in partials:
            p.final = final.id
            save_record(root, p, new=False)
    return final, finish_upload(storage, root, final, full=storage.full_error(host, vfid))


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


def write_all(fd: int, data, full: FullError = _quota_reached) -> None:
    """Write ``data`` (bytes, or a list of bytes: one writev) completely; no space left raises ``full()``
    (the quota's 413 unless told otherwise, a full storage host's 507), not a server error. What was
    written before stays written."""
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
        if e.errno in FULL:
            raise full() from None
        raise


def finish_upload(storage: StorageHosts, root: str, up: Upload, full: FullError = _quota_reached) -> bool:
    """Put a complete upload's file at its target (the entry itself, never through a link): the file
    appears there whole or not at all; True when this call did. A partial upload's end joins its final
    one when every part is complete (a partial no final names yet waits for one). No space for the move
    (a directory that must grow) or the joining raises ``full()`` and keeps the upload, to finish with
    an empty PATCH once there is room."""
    try:
        if up.concat:
            done = _join(storage, root, up)
        else:
            _finish(storage, root, up, up.id, [])
            done = True
    except OSError as e:
        if e.errno in FULL:
            raise full() from None
        raise
    drop_upload_dir(root)
    return done


def _join(storage: StorageHosts, root: str, up: Upload) -> bool:
    """Join a final upload's partials into the first one's part file and move it to the target, once
    every part is complete and none is being written. The upload directory stays locked throughout: a
    second caller waits, then finds the final's record gone (and the file in place)."""
    with locked(root) as ufd:
        if ufd is None:
            return False  # joined meanwhile, and no upload is left
        try:
            up = read_record(root, up.id)  # the record now (a final may have named this partial meanwhile)
            final = up if up.is_final else read_record(root, up.final) if up.final else None
        except NotFound:
            return False  # joined (or aborted) meanwhile
        if final is None:
            return False
        parts = partials(root, final)
        if any(size != part.length for part, size in parts):
            return False  # the last part's end joins them
        held: list[int] = []  # each part's lock: no writer may start while they are joined
        try:
            for part, _ in parts:
                try:
                    held.append(open_part(root, part)[0])
                except UploadLocked:
                    return False  # being written (zero bytes, as all are complete): its end joins them
            first_id, start = parts[0][0].id, parts[0][0].length
            first = paths.open_file(root, f"{UPLOAD_DIR}/{first_id}.part", os.O_WRONLY, field="upload")
            moved: list[bool] = []
            try:
                offset = start
                for part, _ in parts[1:]:
                    src = paths.open_file(root, f"{UPLOAD_DIR}/{part.id}.part", os.O_RDONLY, field="upload")
                    try:
                        _copy(src, first, offset, part.length)
                    finally:
                        os.close(src)
                    offset += part.length
                _finish(storage, root, final, first_id, [p.id for p, _ in parts[1:]], [p.id for p, _ in parts],
                        moved=moved)
            except BaseException:
                if not moved:
                    os.ftruncate(first, start)  # the first part as it was: the join can run again
                raise
            finally:
                os.close(first)
        finally:
            for fd in held:
                os.close(fd)
    return True


def _copy(src: int, dst: int, offset: int, count: int) -> None:
    """``count`` bytes of ``src`` from its start to ``dst`` at ``offset``: in the kernel (a reflink where
    the filesystem shares blocks), else by reading and writing."""
    done = 0
    try:
        while done < count:
            n = os.copy_file_range(src, dst, count - done, offset_src=done, offset_dst=offset + done)
            if n == 0:
                raise Conflict("a partial upload is shorter than its record says", field="upload")
            done += n
        return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    while done < count:
        block = os.pread(src, min(PART_ALIGN, count - done), done)
        if not block:
            raise Conflict("a partial upload is shorter than its record says", field="upload")
        write_all_at(dst, block, offset + done)
        done += len(block)


def write_all_at(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _finish(storage: StorageHosts, root: str, up: Upload, data_id: str, drop_parts: list[str],
            drop_records: list[str] = (), moved: list | None = None) -> None:
    """Move the part file ``data_id`` (the upload's own, or its first partial's, joined) to ``up``'s
    target; then remove the upload's record and those of ``drop_records``, and the part files of
    ``drop_parts`` (the other partials). ``moved`` gets an item once the file is at its target."""
    with paths.open_dir(root, UPLOAD_DIR, field="upload") as ufd, \
            paths.open_parent(root, up.path, reserved=RESERVED) as (dfd, name):
        pfd = os.open(f"{data_id}.part", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=ufd)
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
        os.rename(f"{data_id}.part", name, src_dir_fd=ufd, dst_dir_fd=dfd)
        if moved is not None:
            moved.append(True)
        storage.chown(name, dir_fd=dfd)
        os.fsync(dfd)  # and so is its name
        for gone in [f"{p}.part" for p in drop_parts] + [f"{r}.json" for r in drop_records] + [f"{up.id}.json"]:
            try:
                os.unlink(gone, dir_fd=ufd)
            except FileNotFoundError:
                pass


class PartWriter:
    """One PATCH's bytes, appended to its upload's part file as they arrive (:meth:`feed`), then
    :meth:`finish`: every byte received is written, or the error that stopped the writing is raised.

    The writer holds the part file locked (:func:`open_part`: one writer per upload). The body is
    written while the next piece is read: one write at a time runs on the executor, and :meth:`feed`
    returns as soon as it is handed over, so the server reads the socket meanwhile. Pieces are
    gathered, uncopied, until :attr:`FLUSH_AT` bytes, then go out in one writev: an executor hop
    costs more than writing 100 KiB, and through the proxy pieces arrive in 64 KiB steps. Per upload
    at most one write and one gathering (about 2 MiB) are held. A dropped connection keeps what
    arrived (:meth:`close`): HEAD tells the client where to resume.
    """

    FLUSH_AT = 1 << 20

    def __init__(self, up: Upload, fd: int, offset: int, full: FullError = _quota_reached):
        self.up, self.offset, self.full = up, offset, full
        self.room = up.length - offset  # the body may not run past the declared length
        self.error: BaseException | None = None
        self._fd: int | None = fd
        self._pieces: list | None = None
        self._gathered = 0
        self._pending: asyncio.Future | None = None
        self._pending_len = 0
        self._received = 0

    @classmethod
    def open(cls, root: str, up: Upload, offset: int, full: FullError = _quota_reached) -> PartWriter:
        """The writer of ``up`` resuming at ``offset``, which must be where the part file ends; a write
        that finds no space raises ``full()``."""
        fd, current = open_part(root, up)
        if offset != current:
            os.close(fd)
            raise Conflict(f"Upload-Offset: {offset} does not match the upload's offset {current}",
                           field="Upload-Offset")
        return cls(up, fd, current, full)

    @property
    def complete(self) -> bool:
        """Every declared byte is in the part file."""
        return self.offset == self.up.length

    async def feed(self, chunk: bytes) -> None:
        if self._fd is None or self.error is not None:
            return
        self._received += len(chunk)
        if self._received > self.room:
            self.error = InvalidInput("Upload-Length: the body runs past the declared length", field="body")
            return
        if self._pieces is None:
            self._pieces = []
        self._pieces.append(chunk)
        self._gathered += len(chunk)
        if self._gathered >= self.FLUSH_AT:
            await self._write(self._take())

    async def finish(self) -> int:
        """Write what is gathered, wait for it and close: the new offset, or the error of a write."""
        if self._pieces and self.error is None:
            await self._write(self._take())
        await self._wait_write()
        self.close()
        if self.error is not None:
            raise self.error
        return self.offset

    def close(self) -> None:
        """Release the part file (what arrived stays written); safe to call more than once."""
        if self._fd is None:
            return
        if self._pending is not None and not self._pending.done():
            # a write still running on the executor owns the descriptor until it returns (closing
            # it now could hand its number to another file mid-write)
            self._pending.add_done_callback(lambda _: self.close())
            return
        if self._pending is not None and not self._pending.cancelled() and self._pending.exception():
            self.error = self._pending.exception()  # a failed write: what follows it stays unwritten
        pieces = self._take()
        if pieces and self.error is None:
            # the connection dropped: keep what arrived (less than FLUSH_AT bytes, written inline)
            try:
                write_all(self._fd, pieces, self.full)
            except (OSError, TenancyError):
                pass
        os.close(self._fd)
        self._fd = None

    def _take(self) -> list:
        pieces, self._pieces, self._gathered = self._pieces or [], None, 0
        return pieces

    async def _write(self, data: list) -> None:
        await self._wait_write()
        if self._fd is None or self.error is not None:
            return
        self._pending = asyncio.get_running_loop().run_in_executor(None, write_all, self._fd, data, self.full)
        self._pending_len = sum(map(len, data))

    async def _wait_write(self) -> None:
        pending = self._pending
        if pending is None:
            return
        try:
            await asyncio.shield(pending)  # cancelled here, the write still owns the descriptor
        except TenancyError as e:
            self.error = e
        else:
            self.offset += self._pending_len
        self._pending = None
