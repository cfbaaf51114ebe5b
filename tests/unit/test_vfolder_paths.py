"""Safe paths inside a vfolder, on real directories and symbolic links."""

import os

import pytest

from backendai_hub.errors import InvalidInput, NotFound
from backendai_hub.vfolders import paths


@pytest.fixture
def tree(tmp_path):
    """/…/vf (the folder), /…/vf2 (a sibling whose name extends vf), /…/outside, and links."""
    root = tmp_path / "vf"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "sub" / "file.txt").write_text("inside")
    (tmp_path / "vf2").mkdir()
    (tmp_path / "vf2" / "secret").write_text("sibling")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "passwd").write_text("outside")
    os.symlink("sub", root / "link-in")  # stays inside: allowed
    os.symlink("sub/file.txt", root / "file-link")
    os.symlink("../vf2", root / "link-sibling")  # the sibling-prefix trick
    os.symlink(str(tmp_path / "outside"), root / "link-abs")
    os.symlink("../../outside/passwd", root / "sub" / "escape")
    os.symlink("../outside/nothing", root / "dangling-out")
    return root


# (user path, expected: relative real path inside the root, or the error type and a message fragment)
RESOLVE = [
    ("", ""),
    (".", ""),
    ("sub", "sub"),
    ("sub/", "sub"),
    ("./sub//file.txt", "sub/file.txt"),
    ("link-in/file.txt", "sub/file.txt"),
    ("file-link", "sub/file.txt"),
    ("new-file", "new-file"),  # need not exist yet
    ("..", (InvalidInput, "'..'")),
    ("sub/../../vf2/secret", (InvalidInput, "'..'")),
    ("../vf2", (InvalidInput, "'..'")),
    ("/etc/passwd", (InvalidInput, "relative to the vfolder root")),
    ("sub%2f..%2f..%2fetc", (InvalidInput, "encoded separator")),
    ("sub%2F..", (InvalidInput, "encoded separator")),
    ("sub%5c..", (InvalidInput, "encoded separator")),
    ("%2e%2e/etc", (InvalidInput, "encoded separator")),
    ("sub\\..\\..", (InvalidInput, "backslash")),
    ("sub\x00.txt", (InvalidInput, "NUL")),
    ("link-sibling", (InvalidInput, "leads outside")),
    ("link-sibling/secret", (InvalidInput, "leads outside")),
    ("link-abs/passwd", (InvalidInput, "leads outside")),
    ("sub/escape", (InvalidInput, "leads outside")),
    ("dangling-out", (InvalidInput, "leads outside")),
    ("a" * 256, (InvalidInput, "longer than 255")),
    (42, (InvalidInput, "must be a string")),
]


@pytest.mark.parametrize("user_path, expected", RESOLVE, ids=[repr(p)[:40] for p, _ in RESOLVE])
def test_resolve(tree, user_path, expected):
    if isinstance(expected, tuple):
        with pytest.raises(expected[0], match=expected[1]) as e:
            paths.resolve(str(tree), user_path)
        assert e.value.field == "path"
    else:
        got = paths.resolve(str(tree), user_path)
        assert got == os.path.join(os.path.realpath(tree), expected).rstrip("/")


def test_sibling_prefix_is_not_inside(tmp_path):
    assert not paths.inside("/srv/vf", "/srv/vf2")
    assert not paths.inside("/srv/vf", "/srv/vf2/x")
    assert paths.inside("/srv/vf", "/srv/vf")
    assert paths.inside("/srv/vf", "/srv/vf/x")
    assert paths.inside("/", "/anything")


def test_root_reached_through_a_link_still_works(tree, tmp_path):
    os.symlink(tree, tmp_path / "alias")
    assert paths.resolve(str(tmp_path / "alias"), "sub/file.txt") == os.path.realpath(tree / "sub" / "file.txt")


def test_open_file_reads_inside_and_refuses_outside(tree):
    fd = paths.open_file(str(tree), "link-in/file.txt", os.O_RDONLY)
    with os.fdopen(fd) as f:
        assert f.read() == "inside"
    with pytest.raises(InvalidInput, match="leads outside"):
        paths.open_file(str(tree), "sub/escape", os.O_RDONLY)
    with pytest.raises(NotFound):
        paths.open_file(str(tree), "sub/missing", os.O_RDONLY)
    with pytest.raises(InvalidInput, match="directory"):
        paths.open_file(str(tree), "sub", os.O_RDONLY)
    with pytest.raises(InvalidInput, match="vfolder itself"):
        paths.open_file(str(tree), "", os.O_RDONLY)


def test_a_link_swapped_in_after_the_check_is_not_followed(tree, tmp_path, monkeypatch):
    """The race a session could try: sub/deep passes the check, then becomes a link to outside."""
    real_resolve = paths.resolve

    def racing_resolve(root, user_path, **kw):
        out = real_resolve(root, user_path, **kw)
        if (tree / "sub" / "deep").is_dir() and not (tree / "sub" / "deep").is_symlink():
            (tree / "sub" / "deep").rmdir()
            os.symlink(str(tmp_path / "outside"), tree / "sub" / "deep")
        return out

    monkeypatch.setattr(paths, "resolve", racing_resolve)
    with pytest.raises(InvalidInput, match="not a directory inside the vfolder"):
        paths.open_file(str(tree), "sub/deep/passwd", os.O_RDONLY)
    with pytest.raises(InvalidInput):
        with paths.open_dir(str(tree), "sub/deep"):
            pass


def test_open_parent_does_not_follow_the_entry_itself(tree):
    with paths.open_parent(str(tree), "link-abs") as (fd, name):
        assert name == "link-abs"
        assert os.readlink(name, dir_fd=fd) == str(tree.parent / "outside")
    with pytest.raises(InvalidInput, match="not the vfolder itself"):
        with paths.open_parent(str(tree), "."):
            pass


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY, os.O_WRONLY | os.O_APPEND])
def test_pipes_and_sockets_are_refused_without_blocking(tree, flags):
    """A session can make a named pipe or a socket; opening one must not hang the service's thread."""
    import socket

    os.mkfifo(tree / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "sock"))
    try:
        for name in ("pipe", "sock"):
            with pytest.raises(InvalidInput, match=f"'{name}' is not a regular file"):
                paths.open_file(str(tree), name, flags)
    finally:
        sock.close()


def test_reserved_names_are_refused_through_links_too(tree):
    (tree / ".upload").mkdir()
    (tree / ".upload" / "x.part").write_text("someone's upload")
    os.symlink(".upload", tree / "ul")
    os.symlink("ul/x.part", tree / "part-link")
    reserved = (".upload",)
    for path in (".upload", "ul", "ul/x.part", "part-link"):
        with pytest.raises(InvalidInput, match="holds uploads in progress"):
            paths.resolve(str(tree), path, reserved=reserved)
    with pytest.raises(InvalidInput, match="holds uploads in progress"):
        paths.open_file(str(tree), "part-link", os.O_RDONLY, reserved=reserved)
    with pytest.raises(InvalidInput, match="holds uploads in progress"):
        with paths.open_dir(str(tree), "ul", reserved=reserved):
            pass
    with pytest.raises(InvalidInput, match="holds uploads in progress"):
        with paths.open_parent(str(tree), "ul/new", reserved=reserved):
            pass
    with pytest.raises(InvalidInput, match="holds uploads in progress"):
        with paths.open_parent(str(tree), ".upload", reserved=reserved):
            pass
    with paths.open_parent(str(tree), "ul", reserved=reserved) as (_, name):  # the link itself may go
        assert name == "ul"
    # without ``reserved`` (the service's own upload code) the area is reachable
    assert paths.resolve(str(tree), ".upload/x.part").endswith("/.upload/x.part")
