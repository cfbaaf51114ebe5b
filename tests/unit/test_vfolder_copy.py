"""Cloning copies a folder without following anything a session swaps in while the copy runs."""

import os

import pytest

from backendai_hub.errors import InvalidInput
from backendai_hub.vfolders.files import copy_tree


def _tree(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            out[rel] = ("link", os.readlink(p)) if os.path.islink(p) else \
                ("dir", None) if os.path.isdir(p) else ("file", open(p, "rb").read())
    return out


@pytest.fixture
def world(tmp_path):
    src, dst, outside = tmp_path / "src", tmp_path / "dst", tmp_path / "outside"
    for d in (src, dst, outside):
        d.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (src / "a").write_bytes(b"A" * 1000)
    (src / "b").write_bytes(b"B")
    (src / "d").mkdir()
    (src / "d" / "x").write_bytes(b"X")
    (src / "inner-link").symlink_to("a")
    (src / ".upload").mkdir()
    (src / ".upload" / "partial.part").write_bytes(b"P")
    os.chmod(src / "a", 0o4755)  # set-id bits are not copied
    return src, dst, outside


def test_copies_files_dirs_links_modes_and_reports_progress(world):
    src, dst, _ = world
    seen = []
    copy_tree(str(src), str(dst), progress=lambda n, path: seen.append((path, n)))
    assert _tree(dst) == {"a": ("file", b"A" * 1000), "b": ("file", b"B"), "d": ("dir", None),
                          "d/x": ("file", b"X"), "inner-link": ("link", "a")}
    assert sorted(seen) == [("a", 1000), ("b", 1), ("d/x", 1)]
    assert oct(os.stat(dst / "a").st_mode & 0o7777) == oct(0o755)
    assert os.stat(dst / "a").st_mtime_ns == os.stat(src / "a").st_mtime_ns


def test_entries_swapped_for_links_mid_copy_are_never_followed(world):
    src, dst, outside = world

    def swap(_n, path):
        if path == "a":  # after the first file: b becomes a link to a secret, d a link to a directory outside
            os.unlink(src / "b")
            os.symlink(outside / "secret", src / "b")
            os.rename(src / "d", src / "d-old")
            os.symlink(outside, src / "d")

    copy_tree(str(src), str(dst), progress=swap)
    tree = _tree(dst)
    assert tree["b"] == ("link", str(outside / "secret")) and tree["d"] == ("link", str(outside))
    assert not any(kind == "file" and data == b"secret" for kind, data in tree.values())


def test_a_named_pipe_fails_the_copy_by_name(world):
    src, dst, _ = world
    os.mkfifo(src / "d" / "pipe")
    with pytest.raises(InvalidInput, match="'d/pipe' is a named pipe, which cannot be copied"):
        copy_tree(str(src), str(dst))
