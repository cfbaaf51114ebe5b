"""Safe paths inside a vfolder: user paths are cleaned, resolved and opened without escaping the root.

Two layers. :func:`clean` refuses what is never a path inside a folder (absolute paths, ``..``,
NUL, backslashes, percent-encoded separators left over from double encoding). :func:`resolve`
follows symbolic links with ``os.path.realpath`` and refuses a result that is not the root or
below ``root + os.sep`` (so ``/root/vf2`` never passes for ``/root/vf``). Links that stay inside
the folder keep working, since sessions create them.

A session may swap a directory for a symlink between our check and our use. The ``open_*``
functions therefore walk the already-resolved path again one component at a time with
``openat(O_NOFOLLOW)``: a link that appeared meanwhile makes the call fail (ELOOP/ENOTDIR), it never
leads outside. Callers then act relative to the directory descriptor (``dir_fd=``).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from contextlib import contextmanager
from typing import Collection, Iterator

from ..errors import InvalidInput, NotFound

MAX_PATH = 4096
MAX_COMPONENT = 255
# left over from double encoding (%252f -> %2f): a separator, NUL or parent reference in disguise
_ENCODED = re.compile(r"%(2f|5c|00|2e%2e)", re.IGNORECASE)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def clean(user_path: object, *, field: str = "path", allow_root: bool = True) -> str:
    """``user_path`` as a normalized relative path ("a/b"; "" is the folder itself), or a 400."""
    if user_path is None:
        user_path = ""
    if not isinstance(user_path, str):
        raise InvalidInput(f"{field}: must be a string", field=field)
    if len(user_path) > MAX_PATH:
        raise InvalidInput(f"{field}: longer than {MAX_PATH} characters", field=field)
    try:
        user_path.encode("utf-8", "surrogateescape")  # file names that are not UTF-8 arrive escaped
    except UnicodeEncodeError:
        raise InvalidInput(f"{field}: contains an unpaired surrogate, which is not text", field=field) from None
    if "\x00" in user_path:
        raise InvalidInput(f"{field}: contains a NUL character", field=field)
    if "\\" in user_path:
        raise InvalidInput(f"{field}: {user_path!r} contains a backslash; separate with '/'", field=field)
    if _ENCODED.search(user_path):
        raise InvalidInput(f"{field}: {user_path!r} contains an encoded separator; send the path decoded",
                           field=field)
    if user_path.startswith("/"):
        raise InvalidInput(f"{field}: {user_path!r} must be relative to the vfolder root", field=field)
    parts = []
    for part in user_path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InvalidInput(f"{field}: {user_path!r} must not contain '..'", field=field)
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            raise InvalidInput(f"{field}: a path component is longer than {MAX_COMPONENT} bytes", field=field)
        parts.append(part)
    if not parts and not allow_root:
        raise InvalidInput(f"{field}: must name an entry inside the vfolder, not the vfolder itself",
                           field=field)
    return "/".join(parts)


def inside(root_real: str, path_real: str) -> bool:
    """True for the root itself or anything below ``root_real + os.sep`` (both already real paths)."""
    return path_real == root_real or path_real.startswith(root_real.rstrip(os.sep) + os.sep)


def resolve(root: str, user_path: object, *, field: str = "path", allow_root: bool = True,
            reserved: Collection[str] = ()) -> str:
    """The real absolute path ``user_path`` names inside ``root`` (links followed), or a 400.

    ``reserved``: top-level names of the folder that users may not reach, however they spell the path
    (through a link as well: ``ul -> .upload`` is refused like ``.upload``).
    """
    rel = clean(user_path, field=field, allow_root=allow_root)
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, rel))
    if not inside(root_real, full):
        raise InvalidInput(f"{field}: {user_path!r} leads outside the vfolder (through a symbolic link)",
                           field=field)
    parts = _relparts(root_real, full)
    if parts and parts[0] in reserved:
        raise InvalidInput(f"{field}: {user_path!r} leads into {parts[0]!r}, which holds uploads in progress "
                           f"and is not yours to read or change", field=field)
    return full


def resolve_parent(root: str, user_path: object, *, field: str = "path",
                   reserved: Collection[str] = ()) -> tuple[str, str]:
    """(real parent directory, last component) — the entry itself is not followed (for unlink, rename)."""
    rel = clean(user_path, field=field, allow_root=False)
    parent, _, name = rel.rpartition("/")
    full = resolve(root, parent, field=field, reserved=reserved)
    if name in reserved and full == os.path.realpath(root):
        raise InvalidInput(f"{field}: {name!r} holds uploads in progress and is not yours to change", field=field)
    return full, name


def _relparts(root_real: str, full_real: str) -> list[str]:
    rel = os.path.relpath(full_real, root_real)
    return [] if rel == "." else rel.split(os.sep)


def _walk(root_real: str, parts: list[str], field: str, shown: str) -> int:
    fd = os.open(root_real, _DIR_FLAGS)
    try:
        for part in parts:
            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except FileNotFoundError:
        os.close(fd)
        raise NotFound(f"{field}: no such directory {shown!r}", field=field) from None
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InvalidInput(f"{field}: {shown!r} is not a directory inside the vfolder", field=field) from None
        raise
    return fd


@contextmanager
def open_dir(root: str, user_path: object, *, field: str = "path", reserved: Collection[str] = ()) -> Iterator[int]:
    """A descriptor of the directory ``user_path`` (walked with O_NOFOLLOW after resolving)."""
    root_real = os.path.realpath(root)
    full = resolve(root_real, user_path, field=field, reserved=reserved)
    fd = _walk(root_real, _relparts(root_real, full), field, str(user_path or "/"))
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_parent(root: str, user_path: object, *, field: str = "path",
                reserved: Collection[str] = ()) -> Iterator[tuple[int, str]]:
    """(descriptor of the parent directory, last component) for an entry acted on without following it."""
    root_real = os.path.realpath(root)
    parent, name = resolve_parent(root_real, user_path, field=field, reserved=reserved)
    fd = _walk(root_real, _relparts(root_real, parent), field, os.path.dirname(clean(user_path)) or "/")
    try:
        yield fd, name
    finally:
        os.close(fd)


def open_file(root: str, user_path: object, flags: int, mode: int = 0o644, *, field: str = "path",
              reserved: Collection[str] = ()) -> int:
    """A descriptor of the file ``user_path`` (links inside the folder followed, never outside)."""
    root_real = os.path.realpath(root)
    full = resolve(root_real, user_path, field=field, allow_root=False, reserved=reserved)
    parts = _relparts(root_real, full)
    if not parts:
        raise InvalidInput(f"{field}: {user_path!r} is the vfolder itself, not a file", field=field)
    dfd = _walk(root_real, parts[:-1], field, os.path.dirname(clean(user_path)) or "/")
    try:
        # O_NONBLOCK: opening a named pipe a session made must not hang the service
        fd = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dfd)
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            os.close(fd)
            if kind == stat.S_IFDIR:
                raise IsADirectoryError(errno.EISDIR, "is a directory")
            raise InvalidInput(f"{field}: {user_path!r} is not a regular file", field=field)
        return fd
    except FileNotFoundError:
        raise NotFound(f"{field}: no such file {user_path!r}", field=field) from None
    except IsADirectoryError:
        raise InvalidInput(f"{field}: {user_path!r} is a directory", field=field) from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise InvalidInput(f"{field}: {user_path!r} is not a file inside the vfolder", field=field) from None
        if e.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):  # a pipe without reader, a socket, a device
            raise InvalidInput(f"{field}: {user_path!r} is not a regular file", field=field) from None
        raise
    finally:
        os.close(dfd)
