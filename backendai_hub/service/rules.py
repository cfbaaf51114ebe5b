"""Who may do what in the REST service: the principal and pure authorization rules.

Reads of objects outside a principal's reach answer 404 (they cannot see them); writes they may
see but not make answer 403 naming the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import Forbidden, NotFound
from ..session_query import Scope
from ..scopes import DOMAIN_ADMIN, DOMAIN_GROUP_PREFIX, SCOPE_ADMIN, SCOPE_DOMAIN_ADMIN, SCOPE_SELF, SUPERADMIN, USER

SESSION = "session"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller with the reach the rules below give them."""

    username: str
    role: str
    domain: str
    via: str  # "token", "keypair" or SESSION (a server token with the vfolder scope only)
    admin_domains: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)  # groups of the own domain
    access_key: str | None = None
    server: str | None = None  # SESSION: the server the token belongs to ("" the default one; None unknown)

    @property
    def from_session(self) -> bool:
        return self.via == SESSION

    @property
    def is_superadmin(self) -> bool:
        return self.role == SUPERADMIN

    def administers(self, domain: str) -> bool:
        return self.is_superadmin or domain in self.admin_domains

    @property
    def is_admin(self) -> bool:
        return self.is_superadmin or bool(self.admin_domains)


def role_from_scopes(scopes: set[str], db_role: str, db_domain: str) -> tuple[str, frozenset[str]] | None:
    """Reach granted by a hub token: the scopes it carries, never more than our database's role.

    Returns (role, administered domains), or None when the token carries none of our scopes.
    """
    if SCOPE_ADMIN in scopes and db_role == SUPERADMIN:
        return SUPERADMIN, frozenset()
    prefix = f"{SCOPE_DOMAIN_ADMIN}!group={DOMAIN_GROUP_PREFIX}"
    domains = {s[len(prefix):] for s in scopes if s.startswith(prefix)}
    if (SCOPE_DOMAIN_ADMIN in scopes or db_domain in domains) and db_role == DOMAIN_ADMIN:
        return DOMAIN_ADMIN, frozenset({db_domain})
    if scopes & {SCOPE_SELF, SCOPE_ADMIN, SCOPE_DOMAIN_ADMIN} or domains:
        return USER, frozenset()
    return None


# -- rules ---------------------------------------------------------------------------------------

def _invisible(kind: str, name: str) -> NotFound:
    return NotFound(f"unknown {kind} {name!r}")


def check_policy_choice(p: Principal, kind: str, changes: dict, allowed: Mapping[str, list[str]]) -> None:
    """A domain admin assigns only the ``kind`` policies their domain allows (``allowed``: the domain's
    allowed_resource_policies); superadmins assign any. Removing a policy lifts its limits: superadmins only."""
    if "resource_policy" not in changes or p.is_superadmin:
        return
    name, permitted = changes["resource_policy"], list(allowed.get(kind, []))
    if name is None:
        raise Forbidden(f"only superadmins remove a {kind} resource policy (that lifts its limits)")
    if name not in permitted:
        raise Forbidden(f"domain admins assign only the {kind} resource policies their domain allows "
                        f"({', '.join(permitted) or 'none'}), not {name!r}")


def domain_visible(p: Principal, domain: str) -> bool:
    return p.is_superadmin or domain == p.domain


def check_domain(p: Principal, verb: str, domain: str | None) -> None:
    if verb == "read":
        if domain is not None and not domain_visible(p, domain):
            raise _invisible("domain", domain)
        return
    if not p.is_superadmin:
        if domain is not None and not domain_visible(p, domain):
            raise _invisible("domain", domain)
        raise Forbidden("only superadmins create, change or delete domains")


def group_visible(p: Principal, domain: str, group: str) -> bool:
    return p.administers(domain) or (domain == p.domain and group in p.groups)


def check_group(p: Principal, verb: str, domain: str, group: str | None, *, changes: dict | None = None,
                allowed_policies: Mapping[str, list[str]] | None = None) -> None:
    if group is not None and not group_visible(p, domain, group):
        raise _invisible("group", group)
    if verb == "read":
        return
    if not p.is_admin:
        raise Forbidden("only superadmins and domain admins manage groups")
    if not p.administers(domain):
        raise Forbidden(f"domain admins manage only their own domain {p.domain!r}")
    check_policy_choice(p, "group", changes or {}, allowed_policies or {})


def user_visible(p: Principal, username: str, domain: str) -> bool:
    return p.administers(domain) or username == p.username


USER_SELF_FIELDS = frozenset({"full_name", "password"})


def check_user(p: Principal, verb: str, *, username: str | None, domain: str, role: str | None = None,
               changes: dict | None = None, allowed_policies: Mapping[str, list[str]] | None = None) -> None:
    """``role`` is the target's current role; ``changes`` the fields of a create or update."""
    changes = changes or {}
    if username is not None and not user_visible(p, username, domain):
        raise _invisible("user", username)
    if verb == "read":
        return
    if not p.is_admin:
        if verb == "update" and username == p.username:
            extra = sorted(set(changes) - USER_SELF_FIELDS)
            if extra:
                raise Forbidden(f"users may change only their own full_name and password, not {extra[0]!r}")
            return
        raise Forbidden("only superadmins and domain admins manage users")
    if p.is_superadmin:
        return
    # a domain admin
    if not p.administers(domain):
        raise Forbidden(f"domain admins manage only their own domain {p.domain!r}")
    if role == SUPERADMIN:
        raise Forbidden("domain admins cannot change or delete a superadmin")
    if changes.get("role") == SUPERADMIN:
        raise Forbidden("only superadmins can make someone superadmin")
    if "domain" in changes and changes["domain"] != domain:
        raise Forbidden("only superadmins move users between domains")
    check_policy_choice(p, "user", changes, allowed_policies or {})


def check_keypair(p: Principal, verb: str, *, owner: str, owner_domain: str, owner_role: str,
                  changes: dict | None = None, access_key: str | None = None,
                  allowed_policies: Mapping[str, list[str]] | None = None) -> None:
    """Users issue and deactivate their own keypairs; only admins choose a keypair's policy, and only
    admins re-activate one (an admin's deactivation stands until an admin lifts it)."""
    changes = changes or {}
    if not user_visible(p, owner, owner_domain):
        if access_key is not None:
            raise _invisible("keypair", access_key)
        raise _invisible("user", owner)
    if verb == "read":
        return
    if owner == p.username and not p.is_admin:
        if "resource_policy" in changes:
            raise Forbidden("only admins choose a keypair's resource policy")
        if verb == "update" and changes.get("is_active") is True:
            raise Forbidden("only admins re-activate a keypair")
        return
    if not p.is_admin:  # pragma: no cover - user_visible already limits users to themselves
        raise Forbidden("users manage only their own keypairs")
    if not p.is_superadmin and owner_role == SUPERADMIN and owner != p.username:
        raise Forbidden("domain admins cannot manage a superadmin's keypairs")
    check_policy_choice(p, "keypair", changes, allowed_policies or {})


def check_policy(p: Principal, verb: str) -> None:
    if verb == "read":
        if not p.is_admin:
            raise Forbidden("only superadmins and domain admins read resource policies")
        return
    if not p.is_superadmin:
        raise Forbidden("only superadmins create, change or delete resource policies")


def check_login_locks(p: Principal, verb: str) -> None:
    # lock keys name users and addresses of every domain: superadmins only
    if not p.is_superadmin:
        raise Forbidden("only superadmins see and clear sign-in locks")


# [accelerators] hardware inventory (service/agents.py)
def check_agents(p: Principal) -> None:
    # the inventory shows every session's devices, of every domain: superadmins only
    if not p.is_superadmin:
        raise Forbidden("only superadmins see hardware inventory")


# [sessions] session operations (service/sessions.py, the Backend.AI session routes, admin/gql)
def session_scope(p: Principal) -> Scope:
    """Superadmins see every session, domain admins their domains', everyone their own."""
    return Scope(everything=p.is_superadmin, domains=p.admin_domains, username=p.username)


def check_session(p: Principal, verb: str, *, owner: str, domain: str, ref: str) -> None:
    """Reads (show, ping) and stop: the owner and the admins of the session's domain; others see nothing."""
    if not user_visible(p, owner, domain):
        raise _invisible("session", ref)
    if verb not in ("read", "stop"):  # pragma: no cover - the handlers ask only these
        raise Forbidden(f"sessions cannot be {verb}d here")
