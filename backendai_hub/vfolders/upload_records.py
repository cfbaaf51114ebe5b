"""The records of resumable uploads: what each pending upload is (:class:`Upload`), where it lives, who may
read it, how long it is kept, and removing it. :mod:`.uploads` creates, writes and finishes uploads on top.

Uploads stream to ``<folder>/.upload/<id>.part`` (inside the folder, so a loopback quota counts them)
beside ``<id>.json`` (target path, declared length, owner). The offset is the part file's size, so an
upload interrupted at any byte resumes there, even after a service restart. A *partial* upload (tus
concatenation) has a part file and no target; a *final* one names its partials in order and has no
part file. Records name other uploads by their ids only, and the directory must be the service's own:
a session can rename the folder's entries and make a ``.upload`` of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat as st
import time
from dataclasses import asdict, dataclass

from ..errors import NotFound, InvalidInput
from . import paths
from .fields import HEX32_RE
from .storage import UPLOAD_DIR, StorageHosts, usage

UPLOAD_TTL = 24 * 3600.0  # an upload no byte reached for this long is abandoned (its reservation freed)


@dataclass
class Upload:
    id: str
    path: str  # target, relative to the folder root ("" for a partial upload: it has none)
    length: int
    user: str
    overwrite: bool = False
    created: float = 0.0
    concat: str = ""  # "": a plain upload; "partial": a part of a final one; "final": its parts joined
    parts: list[str] | None = None  # a final upload's partial uploads, in order
    final: str | None = None  # a partial upload's final upload, once one names it

    @property
    def is_final(self) -> bool:
        return self.concat == "final"


def dir_of(root: str) -> str:
    return os.path.join(root, UPLOAD_DIR)


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
        names = os.listdir(dir_of(root))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for name in names:
        if name.endswith(".json") and HEX32_RE.match(name[:-5]):
            try:
                up = read_record(root, name[:-5])
                if _expired(root, up, now):
                    abort_upload(root, up)
                    continue
                if not up.is_final:  # its partials hold the reservation
                    total += max(0, up.length - part_size(root, up.id))
            except (NotFound, OSError, ValueError):
                continue
    return total


def _expired(root: str, up: Upload, now: float) -> bool:
    """No byte arrived for :data:`UPLOAD_TTL` seconds (to any part: a final upload and its partials
    live and go together)."""
    if up.final is not None:
        try:
            up = read_record(root, up.final)
        except NotFound:
            pass  # its final went: the partial is judged alone
    touched = up.created
    for part in (up.parts or []) if up.is_final else [up.id]:
        try:
            touched = max(touched, os.stat(os.path.join(dir_of(root), f"{part}.part"), follow_symlinks=False).st_mtime)
        except FileNotFoundError:
            pass
    return now - touched > UPLOAD_TTL


def part_size(root: str, upload_id: str) -> int:
    return os.stat(os.path.join(dir_of(root), f"{upload_id}.part"), follow_symlinks=False).st_size


def trusted(mode_and_owner: os.stat_result) -> bool:
    """The upload directory is the service's own: a directory of its user that nobody else may write
    (a session can rename the folder's entries and make a ``.upload`` of its own)."""
    return (st.S_ISDIR(mode_and_owner.st_mode) and mode_and_owner.st_uid == os.geteuid()
            and not mode_and_owner.st_mode & 0o022)


def read_record(root: str, upload_id: str) -> Upload:
    try:
        if not trusted(os.lstat(dir_of(root))):
            raise NotFound(f"unknown upload {upload_id!r} (the upload directory is not the service's)",
                           field="upload")
    except FileNotFoundError:
        raise NotFound(f"unknown upload {upload_id!r}", field="upload") from None
    try:
        fd = paths.open_file(root, f"{UPLOAD_DIR}/{upload_id}.json", os.O_RDONLY, field="upload")
    except (NotFound, InvalidInput):
        raise NotFound(f"unknown upload {upload_id!r}", field="upload") from None
    with os.fdopen(fd) as f:
        try:
            data = json.load(f)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            up = Upload(**data)
            _check_links(up)
            return up
        except (ValueError, TypeError):  # damaged, or written by someone else than this service
            raise NotFound(f"unknown upload {upload_id!r} (its record is damaged)", field="upload") from None


def save_record(root: str, up: Upload, *, new: bool) -> None:
    """Write the record of ``up``: a new one exclusively, an existing one replaced whole (a record is
    never seen half-written)."""
    name = f"{up.id}.json" if new else f"{up.id}.json.tmp"
    fd = paths.open_file(root, f"{UPLOAD_DIR}/{name}", os.O_WRONLY | os.O_CREAT | (os.O_EXCL if new else os.O_TRUNC),
                         0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(up), f)
    if not new:
        with paths.open_dir(root, UPLOAD_DIR, field="upload") as ufd:
            os.rename(name, f"{up.id}.json", src_dir_fd=ufd, dst_dir_fd=ufd)


def _check_links(up: Upload) -> None:
    """A record names other uploads by their ids only (they become file names in the upload directory):
    anything else is a damaged record, never a path to follow."""
    ids = [up.final] if up.final is not None else []
    if up.parts is not None:
        if not isinstance(up.parts, list):
            raise TypeError("parts: not a list")
        ids += up.parts
    if up.concat not in ("", "partial", "final") or not all(isinstance(i, str) and HEX32_RE.match(i) for i in ids):
        raise TypeError("not an upload's record")


@contextlib.contextmanager
def locked(root: str):
    """The upload directory locked (None: there is none, so no upload is pending): finals are created
    and joined one at a time per folder."""
    with contextlib.ExitStack() as stack:
        try:
            ufd = stack.enter_context(paths.open_dir(root, UPLOAD_DIR, field="upload"))
        except NotFound:
            ufd = None
        else:
            fcntl.flock(ufd, fcntl.LOCK_EX)  # released when the descriptor closes
        yield ufd


def load_upload(root: str, upload_id: str, user: str) -> tuple[Upload, int]:
    """The upload and its offset (a final upload's: what its partials hold); uploads of other users
    (and abandoned ones) read as unknown."""
    if not isinstance(upload_id, str) or not HEX32_RE.match(upload_id):
        raise NotFound(f"unknown upload {upload_id!r}", field="upload")
    up = read_record(root, upload_id)
    if up.user != user:
        raise NotFound(f"unknown upload {upload_id!r}", field="upload")
    if _expired(root, up, time.time()):
        abort_upload(root, up)
        raise NotFound(f"unknown upload {upload_id!r} (abandoned for {UPLOAD_TTL / 3600:.0f} h)", field="upload")
    try:
        return up, sum(part_size(root, part) for part in up.parts or []) if up.is_final else part_size(root, up.id)
    except FileNotFoundError:
        raise NotFound(f"unknown upload {upload_id!r}", field="upload") from None


def partials(root: str, final: Upload) -> list[tuple[Upload, int]]:
    """A final upload's partial uploads, in order, each with its offset."""
    out = []
    for part in final.parts or []:
        up = read_record(root, part)
        try:
            out.append((up, part_size(root, part)))
        except FileNotFoundError:
            raise NotFound(f"upload {final.id!r} lost its part {part!r}", field="upload") from None
    return out


def abort_upload(root: str, up: Upload) -> None:
    """Remove an upload; a final upload and its partials go together, whichever is named."""
    if up.final is not None:
        try:
            up = read_record(root, up.final)
        except NotFound:
            pass
    for part in up.parts or []:
        abort_one(root, part)
    abort_one(root, up.id)
    drop_upload_dir(root)


def abort_one(root: str, upload_id: str) -> None:
    with paths.open_dir(root, UPLOAD_DIR, field="upload") as ufd:
        for suffix in (".part", ".json", ".json.tmp"):
            try:
                os.unlink(f"{upload_id}{suffix}", dir_fd=ufd)
            except FileNotFoundError:
                pass


def drop_upload_dir(root: str) -> None:
    """Remove the upload directory once no upload is pending (as Backend.AI's storage proxy does), so
    sessions do not see it."""
    try:
        os.rmdir(dir_of(root))
    except OSError:
        pass  # uploads still pending (or it went meanwhile)
