"""Who a request's credential names: one statement that derives its principal, and a short-lived cache of them."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .. import signing
from ..errors import Unauthorized
from ..keys import SecretBox
from ..models import Domain, Group, GroupMember, KeyPair, User, UserRole, UserStatus
from ..scopes import SCOPE_VFOLDERS, session_server
from .rules import SESSION, Principal, role_from_scopes

# how long a cached credential is believed before it is derived afresh; every request still confirms
# its entry against the database in the handler's own transaction (see APIHandler.run), so this bounds
# only how long a secret stays in memory unused, never how long a revoked credential works
TTL_SECONDS = 30.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Facts:
    """A user's row, their domain's and their groups' names, and (for a keypair) the keypair's row."""

    username: str
    role: UserRole
    status: UserStatus
    domain: str
    domain_active: bool
    groups: frozenset[str]
    secret_token: bytes | None = None  # the keypair's secret as stored (encrypted)
    keypair_active: bool | None = None


def _with_domain_and_groups(stmt):
    # the user joined to their domain, one row per group (LEFT JOIN: a user in none gives one row)
    return (stmt.join(Domain, User.domain_id == Domain.id)
            .outerjoin(GroupMember, GroupMember.user_id == User.id)
            .outerjoin(Group, Group.id == GroupMember.group_id))


_USER = (User.username, User.role, User.status, Domain.name, Domain.is_active, Group.name)
# built once: every request runs one of these, and building a statement costs more than running it
_KEYPAIR_FACTS = _with_domain_and_groups(
    select(*_USER, KeyPair.secret_key_encrypted, KeyPair.is_active)
    .select_from(KeyPair).join(User, KeyPair.user_id == User.id)).where(KeyPair.access_key == bindparam("key"))
_USER_FACTS = _with_domain_and_groups(select(*_USER).select_from(User)).where(User.username == bindparam("key"))


def _facts(s: Session, stmt, key: str) -> Facts | None:
    # Core on the session's connection: the same transaction without the ORM's per-statement work
    rows = s.connection().execute(stmt, {"key": key}).all()
    if not rows:
        return None
    first = rows[0]
    keypair = len(first) > len(_USER)
    return Facts(username=first[0], role=UserRole(first[1]), status=UserStatus(first[2]), domain=first[3],
                 domain_active=bool(first[4]), groups=frozenset(r[5] for r in rows if r[5] is not None),
                 secret_token=first[6] if keypair else None, keypair_active=bool(first[7]) if keypair else None)


def keypair_facts(s: Session, access_key: str) -> Facts | None:
    """The keypair ``access_key`` with its user, domain and groups, in one statement; None when unknown."""
    return _facts(s, _KEYPAIR_FACTS, access_key)


def user_facts(s: Session, username: str) -> Facts | None:
    """The user ``username`` with their domain and groups, in one statement; None when unknown."""
    return _facts(s, _USER_FACTS, username)


def check_active(username: str, status: UserStatus, domain: str, domain_active: bool) -> None:
    """Refuse an inactive user, or any user of an inactive domain."""
    if status != UserStatus.active:
        raise Unauthorized(f"user {username!r} is inactive")
    if not domain_active:
        raise Unauthorized(f"domain {domain!r} is inactive")


def keypair_principal(f: Facts, access_key: str) -> Principal:
    """The principal a valid signature by ``access_key`` proves, or Unauthorized saying what is inactive."""
    if not f.keypair_active:
        raise Unauthorized(f"keypair {access_key!r} is inactive")
    check_active(f.username, f.status, f.domain, f.domain_active)
    admin_domains = frozenset({f.domain}) if f.role == UserRole.domain_admin else frozenset()
    return Principal(username=f.username, role=f.role.value, domain=f.domain, via="keypair",
                     admin_domains=admin_domains, groups=f.groups, access_key=access_key)


def token_principal(f: Facts | None, username: str, scopes: frozenset[str]) -> Principal:
    """The principal of a hub token for ``username`` carrying ``scopes`` (never more than the user's role)."""
    if f is None:
        raise Unauthorized(f"hub user {username!r} has no backendai-hub account")
    check_active(f.username, f.status, f.domain, f.domain_active)
    reach = role_from_scopes(set(scopes), f.role.value, f.domain)
    if reach is None and ({SCOPE_VFOLDERS, f"{SCOPE_VFOLDERS}!user={f.username}"} & scopes
                          or session_server(scopes, f.username) is not None):
        # a session's server token: the vfolder routes only (APIHandler.session_token_ok), as its user is
        # in our database (a domain admin manages their domain's group folders from the sidebar too)
        admin_domains = frozenset({f.domain}) if f.role == UserRole.domain_admin else frozenset()
        return Principal(username=f.username, role=f.role.value, domain=f.domain, via=SESSION, groups=f.groups,
                         admin_domains=admin_domains, server=session_server(scopes, f.username))
    if reach is None:
        raise Unauthorized("this token carries no custom:backendai:* scope; sign in again or "
                           "request a token with those scopes")
    role, admin_domains = reach
    return Principal(username=f.username, role=role, domain=f.domain, via="token",
                     admin_domains=frozenset(admin_domains), groups=f.groups)


# checks the request's signature with the secret ``lookup(access key)`` gives, and records it in the
# replay cache when ``replay`` is true (raises signing.SignatureError)
Verify = Callable[[Callable[[str], "str | None"], bool], signing.SignedRequest]


def derive_signed(s: Session, secrets: SecretBox, verify: Verify) -> tuple[str, Credential]:
    """A signed request's access key and credential, from the database (a cache miss)."""
    found: list[tuple[Facts, str]] = []

    def lookup(access_key: str) -> str | None:
        facts = keypair_facts(s, access_key)
        if facts is None:
            return None
        found.append((facts, secrets.decrypt(facts.secret_token)))
        return found[0][1]

    try:
        signed = verify(lookup, True)
    except signing.SignatureError as e:
        raise Unauthorized(str(e)) from None
    facts, secret = found[0]
    return signed.access_key, Credential(keypair_principal(facts, signed.access_key), facts.secret_token, secret)


def confirm_signed(s: Session, secrets: SecretBox, verify: Verify, access_key: str, cached: Credential) -> Credential:
    """The credential of a request verified with ``cached``'s secret, as the database has it now (a
    cache hit): Unauthorized when the keypair is gone, inactive, or holds another secret now."""
    facts = keypair_facts(s, access_key)
    if facts is None:
        raise Unauthorized(str(signing.unknown_key(access_key)))
    secret = cached.secret
    if facts.secret_token != cached.secret_token:  # reissued or re-encrypted: check the signature again
        secret = secrets.decrypt(facts.secret_token)
        try:
            verify(lambda _key: secret, False)  # the replay cache has recorded it already
        except signing.SignatureError as e:
            raise Unauthorized(str(e)) from None
    return Credential(keypair_principal(facts, access_key), facts.secret_token, secret)


def derive_token(s: Session, username: str, scopes: frozenset[str]) -> Credential:
    """The credential of a hub token for ``username`` carrying ``scopes``, from the database."""
    return Credential(token_principal(user_facts(s, username), username, scopes))


@dataclass(frozen=True)
class Credential:
    """What a credential proved when it was last derived: its principal and, for a keypair, its secret."""

    principal: Principal
    secret_token: bytes | None = None  # as stored: a reissued or re-encrypted secret differs
    secret: str | None = None


class PrincipalCache:
    """Credentials recently derived, by key (``("keypair", access key)`` or ``("token", user, scopes)``),
    each for ``ttl`` seconds, at most ``max_entries`` (least recently used go first).

    A hit is a hint, not a verdict: the request that uses it confirms it against the database in its
    own transaction. Only the event loop's thread uses it, so it has no lock.
    """

    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES, clock=time.monotonic):
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl must be positive and max_entries at least 1")
        self.ttl, self.max_entries, self._clock = ttl, max_entries, clock
        self._entries: OrderedDict[Hashable, tuple[float, Credential]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Credential | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        expires, cred = hit
        if expires <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return cred

    def put(self, key: Hashable, cred: Credential) -> None:
        self._entries[key] = (self._clock() + self.ttl, cred)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)
