"""Which folders a session mounts: requested by name or id, dot-folders automatically, ro stays ro."""

import pytest

from backendai_hub.errors import Conflict, InvalidInput
from backendai_hub.vfolders.mounts import Mountable, mounts_for

ID = {n: f"{i:032x}" for i, n in enumerate(["data", ".local", "shared", "pub", "gdata", "inv", ".gconf",
                                              ".invdot", "dup1", "dup2"], start=1)}


def f(name, perm, via, key=None, folder_name=None):
    key = key or name
    return Mountable(id=ID[key], name=folder_name or name, path=f"/srv/vf/{ID[key]}", perm=perm, via=via)


FOLDERS = [
    f("data", "wd", "owner"),
    f(".local", "wd", "owner"),
    f("shared", "ro", "invited"),
    f("pub", "ro", "public"),
    f("gdata", "rw", "group"),
    f(".gconf", "ro", "override"),
    f(".invdot", "rw", "invited"),  # invited dot-folders are not mounted unasked
    f("inv", "rw", "invited", folder_name="data"),  # someone else's 'data' the user was invited to
]


def table(mounts):
    return [(m.target, m.read_only, m.source.rsplit("/", 1)[1]) for m in mounts]


CASES = [
    ([], [("/home/work/.gconf", True, ID[".gconf"]), ("/home/work/.local", False, ID[".local"])]),
    (["data"], [("/home/work/.gconf", True, ID[".gconf"]), ("/home/work/.local", False, ID[".local"]),
                ("/home/work/data", False, ID["data"])]),  # own 'data' wins over the invited one
    (["shared", "pub", "gdata"], [("/home/work/.gconf", True, ID[".gconf"]), ("/home/work/.local", False, ID[".local"]),
                                  ("/home/work/gdata", False, ID["gdata"]), ("/home/work/pub", True, ID["pub"]),
                                  ("/home/work/shared", True, ID["shared"])]),
    ([".invdot"], [("/home/work/.gconf", True, ID[".gconf"]), ("/home/work/.invdot", False, ID[".invdot"]),
                   ("/home/work/.local", False, ID[".local"])]),
    ([ID["inv"]], [("/home/work/.gconf", True, ID[".gconf"]), ("/home/work/.local", False, ID[".local"]),
                   ("/home/work/data", False, ID["inv"])]),  # by id, the invited one
]


@pytest.mark.parametrize("requested, expected", CASES)
def test_mounts(requested, expected):
    assert table(mounts_for(requested, FOLDERS)) == expected


def test_unknown_folder_is_refused_naming_the_field():
    with pytest.raises(InvalidInput, match="no vfolder 'secret' that you may mount") as e:
        mounts_for(["secret"], FOLDERS)
    assert e.value.field == "vfolders"


def test_same_rank_same_name_asks_for_an_id():
    folders = [f("dup1", "rw", "group", folder_name="x"), f("dup2", "rw", "group", folder_name="x")]
    with pytest.raises(Conflict, match="name it by id"):
        mounts_for(["x"], folders)
    assert table(mounts_for([ID["dup2"]], folders)) == [("/home/work/x", False, ID["dup2"])]


def test_two_folders_cannot_share_a_target():
    with pytest.raises(Conflict, match="would mount at /home/work/data"):
        mounts_for(["data", ID["inv"]], FOLDERS)


def test_docker_mount_dict():
    m = mounts_for(["pub"], [f("pub", "ro", "public")])[0]
    assert m.docker() == {"Target": "/home/work/pub", "Source": f"/srv/vf/{ID['pub']}", "Type": "bind",
                          "ReadOnly": True}


def test_own_dot_folder_wins_over_a_groups_whatever_the_order():
    group_local = Mountable(id="f" * 32, name=".local", path="/srv/vf/group", perm="ro", via="group")
    for folders in ([group_local, *FOLDERS], [*FOLDERS, group_local]):
        got = {m.target: m.source for m in mounts_for([], folders)}
        assert got["/home/work/.local"] == f"/srv/vf/{ID['.local']}"
