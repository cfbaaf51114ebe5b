"""The web shell's pure parts: which folders a shell mounts, its home's id, its options (table-driven)."""

import pytest

from backendai_hub.errors import InvalidInput
from backendai_hub.spawner.shell import ShellMixin, all_mounts, home_id
from backendai_hub.vfolders import permissions as A
from backendai_hub.vfolders.mounts import Mountable


def folder(i, name, via, perm=A.RW):
    return Mountable(id=f"{i:032x}", name=name, path=f"/vf/{i}", perm=perm, via=via, host="local")


@pytest.mark.parametrize("folders, expected", [
    # every way a user reaches a folder, each with its permission
    ([folder(1, "data", A.OWNER), folder(2, "team", A.GROUP, A.RO), folder(3, "refs", A.INVITED, A.RO),
      folder(4, "ds", A.PUBLIC, A.RO), folder(5, ".local", A.OWNER)],
     [(".local", False), ("data", False), ("ds", True), ("refs", True), ("team", True)]),
    # a folder an admin merely sees (not theirs, not shared with them) is not mounted
    ([folder(1, "data", A.OWNER), folder(2, "alices", A.ADMIN)], [("data", False)]),
    # two of one name: the own one wins over the invited, the group's over the public
    ([folder(1, "x", A.INVITED, A.RO), folder(2, "x", A.OWNER), folder(3, "y", A.PUBLIC, A.RO), folder(4, "y", A.GROUP)],
     [("x", False), ("y", False)]),
    ([], []),
])
def test_a_shell_mounts_every_folder_its_user_may_mount_once(folders, expected):
    mounts = all_mounts(folders)
    assert [(m.target.rsplit("/", 1)[1], m.read_only) for m in mounts] == expected
    assert all(m.target.startswith("/home/work/") for m in mounts)


def test_two_folders_of_one_name_and_rank_mount_one_of_them():
    mounts = all_mounts([folder(2, "x", A.INVITED), folder(1, "x", A.INVITED, A.RO)])
    assert [(m.vfolder_id, m.read_only) for m in mounts] == [(f"{1:032x}", True)]


def test_each_user_has_a_home_of_their_own():
    assert home_id(1) == home_id(1)
    assert len({home_id(i) for i in range(1000)}) == 1000
    assert all(len(home_id(i)) == 32 and int(home_id(i), 16) >= 0 for i in (1, 2, 99))


class Shell(ShellMixin):
    name = "shell"


class Other(ShellMixin):
    name = "gpu"


@pytest.mark.parametrize("cls, raw, options, reset", [
    (Shell, {}, {"image": "backendai-hub/shell:latest", "app": "shell"}, False),
    (Shell, {"app": "shell", "reset_home": True}, {"image": "backendai-hub/shell:latest", "app": "shell"}, True),
    (Shell, {"image": "mine:1", "resources": "cpu=2"}, {"image": "mine:1", "app": "shell", "resources": "cpu=2"},
     False),
    (Other, {"reset_home": True}, {"reset_home": True}, False),  # not a shell: parse_options refuses it
])
def test_shell_options(cls, raw, options, reset):
    s = cls()
    assert s._shell_options(dict(raw)) == options
    assert s._shell_reset is reset


@pytest.mark.parametrize("value", ["yes", 1, None, []])
def test_reset_home_must_be_a_boolean(value):
    with pytest.raises(InvalidInput) as e:
        Shell()._shell_options({"reset_home": value})
    assert e.value.field == "reset_home"


@pytest.mark.parametrize("replayed, shown", [
    ("\x1b[>c\x1b[>q\x1b[?1049hwork@x:~$ ", "\x1b[?1049hwork@x:~$ "),  # what tmux asks at its start
    ("a\x1b[cb\x1b[0cc\x1b[=c", "abc"),
    ("\x1b[6n\x1b[5n\x1b[?6n", ""),
    ("\x1b]11;?\x07\x1b]10;?\x1b\\\x1b]4;1;?\x07", ""),
    ("\x1b[?2004$p", ""),
    # what a terminal draws stays: colours, cursor moves, titles, clear
    ("\x1b[1;32mok\x1b[0m\x1b[2J\x1b[H\x1b[10;5H\x1b]0;title\x07\x1b[K", None),
])
def test_a_reattached_terminal_is_not_asked_again(replayed, shown):
    from backendai_hub_session.apps.shell import strip_queries

    assert strip_queries(replayed) == (replayed if shown is None else shown)


@pytest.mark.parametrize("model, allowed", [
    ({"kind": "user", "name": "demo", "scopes": ["access:servers!user=demo"]}, True),
    ({"name": "demo"}, True),
    ({"kind": "user", "name": "admin", "scopes": ["access:servers"]}, False),  # a hub admin: not the owner
    ({"kind": "service", "name": "demo", "scopes": ["access:servers"]}, False),
    ({"kind": "user", "name": "Demo"}, False),
])
def test_only_the_owner_may_use_the_shell(model, allowed):
    from backendai_hub_session.apps.shell import owner_only

    assert owner_only(model, "demo") is allowed
    assert owner_only(model, None) is False
