"""Who reaches a vfolder with which permission, and what each may do: one table over subjects x operations."""

import pytest

from backendai_hub.errors import Conflict, Forbidden, NotFound
from backendai_hub.vfolders.permissions import FolderView, Subject, check, effective_permission

ALICE = Subject("alice", "default", frozenset({"ml"}))
BOB = Subject("bob", "default", frozenset({"cv"}))  # invited ro
CAROL = Subject("carol", "default")  # invited rw
DAVE = Subject("dave", "default")  # invited wd
MIA = Subject("mia", "default", frozenset({"ml"}))  # member of ml
ERIN = Subject("erin", "default", frozenset({"ml"}))  # member of ml with a ro override
NICK = Subject("nick", "default", frozenset({"cv"}))  # same domain, other group
OLIVIA = Subject("olivia", "other", frozenset({"ml"}))  # other domain, a group also named ml
DADMIN = Subject("dadmin", "default", role="domain-admin")
ODADMIN = Subject("odadmin", "other", role="domain-admin")
ROOT = Subject("root", "default", role="superadmin")

USER_F = FolderView("mine", "default", owner_user="alice")
USER_GRANTS = {"bob": "ro", "carol": "rw", "dave": "wd"}
GROUP_F = FolderView("shared", "default", owner_group="ml", permission="rw", cloneable=True)
GROUP_GRANTS = {"erin": "ro"}
PUBLIC_F = FolderView("pub", "default", owner_user="alice", is_public=True)
TRASHED_F = FolderView("old", "default", owner_user="alice", status="delete-pending")
CLONING_F = FolderView("copy", "default", owner_user="alice", status="cloning")

OPS = ["read", "mount", "write", "delete-files", "clone", "rename", "delete", "invite", "leave"]
ALL = " ".join(["ok"] * 8)
HIDDEN = " ".join(["404"] * 9)

# (subject, folder, grants, expected per OPS in order)
TABLE = [
    (ALICE, USER_F, USER_GRANTS, ALL + " 403"),  # an owner cannot leave
    (BOB, USER_F, USER_GRANTS, "ok ok 403 403 403 403 403 403 ok"),  # ro; not cloneable
    (CAROL, USER_F, USER_GRANTS, "ok ok ok 403 403 403 403 403 ok"),
    (DAVE, USER_F, USER_GRANTS, "ok ok ok ok 403 403 403 403 ok"),
    (MIA, USER_F, USER_GRANTS, HIDDEN),
    (DADMIN, USER_F, USER_GRANTS, HIDDEN),  # admins do not read users' private folders
    (ROOT, USER_F, USER_GRANTS, HIDDEN),
    (OLIVIA, USER_F, {"olivia": "rw"}, HIDDEN),  # a grant never crosses domains
    (MIA, GROUP_F, GROUP_GRANTS, "ok ok ok 403 ok 403 403 403 403"),
    (ERIN, GROUP_F, GROUP_GRANTS, "ok ok 403 403 ok 403 403 403 403"),
    (NICK, GROUP_F, GROUP_GRANTS, HIDDEN),
    (OLIVIA, GROUP_F, GROUP_GRANTS, HIDDEN),
    (DADMIN, GROUP_F, GROUP_GRANTS, ALL + " 403"),
    (ROOT, GROUP_F, GROUP_GRANTS, ALL + " 403"),
    (ODADMIN, GROUP_F, GROUP_GRANTS, HIDDEN),
    (NICK, PUBLIC_F, {}, "ok ok 403 403 403 403 403 403 403"),
    (OLIVIA, PUBLIC_F, {}, HIDDEN),
    (ALICE, PUBLIC_F, {}, ALL + " 403"),
    (ALICE, TRASHED_F, {"bob": "rw"}, " ".join(["409"] * 9)),
    (BOB, TRASHED_F, {"bob": "rw"}, HIDDEN),
    (ALICE, CLONING_F, {}, " ".join(["409"] * 9)),  # usable once the copy is done
    (BOB, CLONING_F, {}, HIDDEN),
]


def _outcome(who, folder, grants, op) -> str:
    try:
        check(who, folder, grants, op)
    except NotFound:
        return "404"
    except Forbidden:
        return "403"
    except Conflict:
        return "409"
    return "ok"


@pytest.mark.parametrize("who, folder, grants, expected", TABLE,
                         ids=[f"{w.username}-{f.name}" for w, f, _, _ in TABLE])
def test_permission_matrix(who, folder, grants, expected):
    got = " ".join(_outcome(who, folder, grants, op) for op in OPS)
    assert got == expected, dict(zip(OPS, got.split()))


EFFECTIVE = [
    (ALICE, USER_F, USER_GRANTS, ("wd", True, "owner")),
    (BOB, USER_F, USER_GRANTS, ("ro", False, "invited")),
    (MIA, GROUP_F, GROUP_GRANTS, ("rw", False, "group")),
    (ERIN, GROUP_F, GROUP_GRANTS, ("ro", False, "override")),
    (DADMIN, GROUP_F, GROUP_GRANTS, ("wd", True, "admin")),
    (NICK, PUBLIC_F, {}, ("ro", False, "public")),
    (BOB, PUBLIC_F, {"bob": "rw"}, ("rw", False, "invited")),  # an invitation beats public
    (OLIVIA, PUBLIC_F, {}, (None, False, None)),
    (ROOT, FolderView("g", "other", owner_group="ml"), {}, ("wd", True, "admin")),
]


@pytest.mark.parametrize("who, folder, grants, expected", EFFECTIVE)
def test_effective_permission(who, folder, grants, expected):
    acc = effective_permission(who, folder, grants)
    assert (acc.perm, acc.manage, acc.via) == expected


def test_denials_name_the_rule():
    with pytest.raises(Forbidden, match=r"vfolder 'mine' is ro for you \(you were invited with ro\): write needs rw"):
        check(BOB, USER_F, USER_GRANTS, "write")
    with pytest.raises(Forbidden, match="only the owner of vfolder 'mine' may rename it"):
        check(CAROL, USER_F, USER_GRANTS, "rename")
    with pytest.raises(Forbidden, match="admins of domain 'default' may delete group vfolder 'shared'"):
        check(MIA, GROUP_F, GROUP_GRANTS, "delete")
    with pytest.raises(Forbidden, match="not cloneable"):
        check(BOB, USER_F, USER_GRANTS, "clone")
    with pytest.raises(NotFound, match="unknown vfolder 'mine'"):
        check(NICK, USER_F, USER_GRANTS, "read")
    with pytest.raises(Conflict, match="in the trash"):
        check(ALICE, TRASHED_F, {}, "write")
    assert _outcome(ALICE, TRASHED_F, {}, "restore") == "ok"
    assert _outcome(ALICE, TRASHED_F, {}, "info") == "ok"
    assert _outcome(ALICE, USER_F, {}, "purge") == "409"
    assert _outcome(ALICE, USER_F, {}, "restore") == "409"


def test_a_folder_being_cloned_shows_only_its_info():
    assert _outcome(ALICE, CLONING_F, {}, "info") == "ok"
    with pytest.raises(Conflict, match="is being cloned"):
        check(ALICE, CLONING_F, {}, "mount")


@pytest.mark.parametrize("levels, host, perm, outcome", [
    ((["local"],), "local", "upload-file", "ok"),  # a list grants everything
    (({"local": ["download-file"]},), "local", "upload-file", "does not grant 'upload-file'"),
    (({"local": ["download-file"]}, {"local": ["upload-file"]}), "local", "upload-file", "ok"),  # union
    (({"local": []}, None, []), "local", "mount-in-session", "does not grant"),
    (({"local": ["bogus", "mount-in-session"]},), "local", "mount-in-session", "ok"),  # unknown names ignored
    ((["nfs"],), "local", "create-vfolder", "storage host 'local' is not allowed for 'alice' (the union of "
                                            "domain, groups and keypair policy allows: nfs)"),
])
def test_host_permissions(levels, host, perm, outcome):
    from backendai_hub.host_permissions import check_host, merge_host_grants

    try:
        check_host(merge_host_grants(*levels), host, perm, "alice")
        got = "ok"
    except Forbidden as e:
        got = str(e)
    assert outcome in got, got
