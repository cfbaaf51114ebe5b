"""Per-server names (spawner.names): injective over (user, server), legal where they are used, opaque."""

import itertools
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote

import pytest

from backendai_hub.spawner.firewall import egress_chain, tag_comment
from backendai_hub.spawner.names import (
    container_token,
    firewall_tag,
    label_filters,
    legacy_firewall_tag,
    oauth_client_id,
    session_labels,
)
from backendai_hub.validation import USERNAME_RE

# usernames the tenancy accepts, chosen to collide under a '-' join; server names as JupyterHub 6
# creates them (lowercase slugs) and as older hubs let them in (anything but '/')
USERS = ["a", "a-b", "a-b-c", "a--b", "a.b", "a_b", "a-", "0", "a" * 64]
SERVERS = ["", "b", "b-c", "c", "b--c", "B", "b.c", "b_c", "b~c", "b%7Ec", "~", "%", "b c", "\u00e9", "a" * 255]


def test_the_examples_are_what_the_hub_accepts():
    assert all(USERNAME_RE.match(u) for u in USERS)


def test_oauth_client_ids_are_injective_over_user_and_server():
    pairs = list(itertools.product(USERS, SERVERS))
    ids = {oauth_client_id(u, s): (u, s) for u, s in pairs}
    assert len(ids) == len(pairs)
    # JupyterHub's own default collides: 'jupyterhub-user-a-b' twice
    assert oauth_client_id("a", "b") != oauth_client_id("a-b")


@pytest.mark.parametrize("user", USERS)
def test_a_default_server_keeps_jupyterhubs_client_id(user):
    # JupyterHub names it f"jupyterhub-user-{quote(user)}": running default servers keep their client
    assert oauth_client_id(user) == f"jupyterhub-user-{quote(user)}" == oauth_client_id(user, "")


@pytest.mark.parametrize("user, server", list(itertools.product(USERS[:3], SERVERS)))
def test_a_client_id_is_a_legal_cookie_name(user, server):
    # the server's jupyter-server names its cookie after its client id
    cookie = SimpleCookie()
    try:
        cookie[oauth_client_id(user, server)] = "v"
    except CookieError as e:
        pytest.fail(f"{oauth_client_id(user, server)!r}: {e}")


def test_container_tokens_are_opaque_and_fresh():
    tokens = {container_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(t) == 24 and set(t) <= set("0123456789abcdef") for t in tokens)


def test_labels_name_the_session_and_filters_find_them():
    assert session_labels("a-b", "", 7) == {"ai.backend.hub.session": "7", "ai.backend.hub.user": "a-b",
                                            "ai.backend.hub.server": ""}
    assert label_filters("a-b", "") == {"label": ["ai.backend.hub.user=a-b", "ai.backend.hub.server="]}
    assert label_filters("a") == {"label": ["ai.backend.hub.user=a"]}


def test_firewall_tags_are_unique_per_container_and_valid():
    cid_a, cid_b = "a" * 64, "b" * 64
    # two hubs on one host both have a session 1: their rules must not share a tag (or a chain)
    tags = {firewall_tag(1, cid_a), firewall_tag(1, cid_b), firewall_tag(2, cid_a), firewall_tag(12, cid_a)}
    assert len(tags) == 4
    assert len({egress_chain(t) for t in tags}) == 4
    assert all(tag_comment(t) == "bhub:" + t for t in tags)
    assert legacy_firewall_tag(7) == "session-7"
