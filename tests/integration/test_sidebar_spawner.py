"""The spawner's part in the sidebar, driven by JupyterHub's own User.spawn in process (no Docker): the spawn
form's checklist of mountable folders with their permissions, the form's fields (checklist and the old
text field) as options, and the server token the hub makes from Spawner.server_token_scopes."""

from __future__ import annotations

import asyncio
import re
from html import unescape

import pytest
from jupyterhub import orm, roles
from jupyterhub import scopes as hub_scopes
from sqlalchemy import select

from backendai_hub.auth import base_roles
from backendai_hub.models import Group, User, VFolder, VFolderGrant, VFolderMount, VFolderPermission
from backendai_hub.scopes import CUSTOM_SCOPES, SCOPE_VFOLDERS
from backendai_hub.service.principals import derive_token
from backendai_hub.spawner.sidebar import SERVICE_ENV
from tests.integration import test_spawner_inprocess as inprocess
from tests.integration.test_spawner_inprocess import ONE_CPU, add_folder

db, make_hub = inprocess.db, inprocess.make_hub  # its fixtures: the tenancy database, in-process hubs


def folders(db, storage_root):
    """ann: 'data', '.local' (a dot-folder: always mounted); ben's 'shared' invites ann ro; 'team' of ml
    (members rw); ben's private 'secret'."""
    ids = {name: add_folder(db, storage_root, owner, name)
           for owner, name in (("ann", "data"), ("ann", ".local"), ("ben", "shared"), ("ben", "secret"),
                               ("ann", "team"))}
    with db.session() as s:
        ann = s.scalar(select(User).where(User.username == "ann"))
        team = s.get(VFolder, ids["team"])
        team.user_id, team.group_id = None, s.scalar(select(Group).where(Group.name == "ml")).id
        team.owner_key = f"g:{team.group_id}"
        s.add(VFolderGrant(vfolder_id=ids["shared"], user_id=ann.id, permission=VFolderPermission.ro))
    return ids


async def test_the_spawn_form_offers_the_mountable_folders_with_their_permissions(db, make_hub, tmp_path):
    hub = make_hub()
    ids = folders(db, str(tmp_path / "vfolders"))
    spawner = hub.user("ann").get_or_create_spawner("", "")
    html = await spawner.render_options_form()
    boxes = dict(re.findall(r'name="vfolders" id="bai-vf-[0-9a-f]+" value="([0-9a-f]+)"\s*([^>]*)>', html))
    assert set(boxes) == {ids["data"], ids[".local"], ids["shared"], ids["team"]}  # never ben's 'secret'
    assert "checked disabled" in boxes[ids[".local"]] and boxes[ids["data"]].strip() == ""
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))
    assert "data wd yours" in text and "shared ro shared with you" in text and "team rw your group's" in text
    assert ".local wd yours, always mounted" in text
    assert 'name="vfolders" placeholder' not in html  # no free-text field any more


async def test_the_checklist_and_the_old_text_field_both_mount(db, make_hub, tmp_path):
    hub = make_hub()
    ids = folders(db, str(tmp_path / "vfolders"))
    spawner = hub.user("ann").get_or_create_spawner("", "")
    assert spawner.options_from_form({"vfolders": [ids["data"], ids["shared"]], "image": [""]}) == {
        "vfolders": [ids["data"], ids["shared"]]}
    assert spawner.options_from_form({"vfolders": ["data, shared"]}) == {"vfolders": ["data", "shared"]}
    spawner, spawn = hub.spawn("ann", options={**ONE_CPU, **spawner.options_from_form(
        {"vfolders": [ids["data"], ids["shared"]]})})
    await asyncio.wait_for(spawn, 20)
    with db.session() as s:
        mounts = sorted((m.target, m.read_only) for m in s.scalars(select(VFolderMount)))
    assert mounts == [("/home/work/.local", False), ("/home/work/data", False), ("/home/work/shared", True)]


@pytest.fixture
def custom_scopes():
    """The hub's custom scopes as jupyterhub_config.py declares them, taken back afterwards."""
    saved = dict(hub_scopes.scope_definitions)
    hub_scopes.define_custom_scopes(CUSTOM_SCOPES)
    yield
    hub_scopes.scope_definitions.clear()
    hub_scopes.scope_definitions.update(saved)


async def test_the_hub_gives_the_server_token_the_vfolder_scope_of_its_own_server(db, make_hub, custom_scopes):
    hub = make_hub(host_capacity={"cpu": 4, "mem": "8g"})
    user = hub.user("ann")
    for role in base_roles("backendai"):
        if orm.Role.find(hub.db, role["name"]) is None:
            roles.create_role(hub.db, role)
    roles.grant_role(hub.db, user.orm_user, "backendai-user")
    spawner, spawn = hub.spawn("ann", "lab", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    token = orm.APIToken.find(hub.db, spawner.api_token)
    assert f"{SCOPE_VFOLDERS}!server=ann/lab" in token.scopes, token.scopes
    assert "access:services!service=backendai" in token.scopes
    assert spawner.container.environment[SERVICE_ENV] == "http://127.0.0.1:8081/services/backendai/"
    # what the service makes of it: ann, from her server 'lab', and only that
    expanded = frozenset(hub_scopes.expand_scopes(token.scopes, owner=user.orm_user))
    with db.session() as s:
        principal = derive_token(s, "ann", expanded).principal
    assert (principal.username, principal.via, principal.server, principal.role) == ("ann", "session", "lab", "user")
    # a user whose roles lack the scope gets a token without it: the token never exceeds its user
    spawner, spawn = hub.spawn("ben", options=ONE_CPU)
    await asyncio.wait_for(spawn, 20)
    assert not any(s.startswith(SCOPE_VFOLDERS) for s in orm.APIToken.find(hub.db, spawner.api_token).scopes)
