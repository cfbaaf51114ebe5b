"""BackendAIAuthenticator: sign in by password or keypair; mirror tenancy into hub groups and roles."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import os
import threading
from datetime import datetime, timedelta, timezone

from jupyterhub.auth import Authenticator
from jupyterhub.roles import get_default_roles
from sqlalchemy import select
from tornado import web
from traitlets import Float, Integer, Unicode, default

from . import audit, forwarded, throttle
from .db import Database
from .errors import NotFound, ServiceUnavailable
from .keys import CryptKeyError, hash_password, password_needs_rehash, verify_password
from .models import AuditStatus, KeyPair, User, UserRole, UserStatus
from .scopes import (DOMAIN_GROUP_PREFIX, SCOPE_ADMIN, SCOPE_CODE_LOG, SCOPE_DOMAIN_ADMIN, SCOPE_SELF,
                     SCOPE_VFOLDERS)
from .tenancy import users
from .validation import ACCESS_KEY_RE

_DEFAULT_ROLES = {r["name"]: r for r in get_default_roles()}


def hub_group_names(user: User) -> list[str]:
    """Hub groups mirroring tenancy: ``domain:<domain>`` and ``<domain>:<group>`` (never collide).

    Superadmins stay out of ``domain:<domain>``: domain admins' hub scopes are filtered by that
    group, and they must not reach a superadmin's servers.
    """
    d = user.domain.name
    projects = [f"{d}:{g.name}" for g in user.groups if g.is_active]
    if user.role == UserRole.superadmin:
        return projects
    return [f"{DOMAIN_GROUP_PREFIX}{d}"] + projects


def domain_admin_role(domain: str, service: str) -> dict:
    group = f"{DOMAIN_GROUP_PREFIX}{domain}"
    return {
        "name": f"backendai-domain-admin-{domain}",
        "description": f"Administer domain {domain!r}: its groups, users, keypairs and their servers",
        "scopes": [
            f"{SCOPE_DOMAIN_ADMIN}!group={group}",
            f"access:services!service={service}",
            "admin-ui",
            f"list:users!group={group}",
            f"read:users!group={group}",
            f"admin:servers!group={group}",
            f"read:groups!group={group}",
        ],
    }


def base_roles(service: str) -> list[dict]:
    """Roles every user holds: the hub's default ``user`` role and use of our API for oneself."""
    return [
        dict(_DEFAULT_ROLES["user"]),
        {"name": "backendai-user", "description": "Use backendai-hub's API for yourself",
         # SCOPE_CODE_LOG, SCOPE_VFOLDERS: held so that a session's server token may carry them (a
         # token's scopes are a subset of its user's)
         "scopes": [SCOPE_SELF, SCOPE_CODE_LOG, SCOPE_VFOLDERS, f"access:services!service={service}"]},
    ]


def hub_roles(user: User, service: str) -> list[dict]:
    """The hub roles a user holds; refreshed at every sign-in and refresh."""
    roles = base_roles(service)
    if user.role == UserRole.superadmin:
        roles += [dict(_DEFAULT_ROLES["admin"]),
                  {"name": "backendai-superadmin", "description": "Administer all of backendai-hub",
                   "scopes": [SCOPE_ADMIN, f"access:services!service={service}"]}]
    elif user.role == UserRole.domain_admin:
        roles.append(domain_admin_role(user.domain.name, service))
    return roles


class BackendAIAuthenticator(Authenticator):
    """Authenticates against backendai-hub's users and keypairs; our database is the allow list.

    The login form takes a username or email with its password, or an access key with its secret
    key. Inactive users, keypairs and domains are refused with a message saying which; repeated
    failures lock the account (whichever of its names they used) and the client address for a while.
    """

    @default("allow_all")
    def _allow_all_default(self):
        # only users present and active in our database can authenticate at all
        return True

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("manage_roles")
    def _manage_roles_default(self):
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self):
        return 60

    service_name = Unicode(
        "backendai", help="Name of the hub-managed REST service whose access the mirrored roles grant.",
    ).tag(config=True)

    max_failures = Integer(
        5, help="Failed sign-ins (per user and per client address) within `failure_window` that lock it.",
    ).tag(config=True)

    failure_window = Float(60, help="Seconds over which failed sign-ins are counted.").tag(config=True)

    lock_seconds = Float(300, help="Seconds a user or client address stays locked.").tag(config=True)

    trusted_proxies = forwarded.Networks(
        help="IP addresses or networks (CIDR) of the proxies in front of the hub, whose X-Forwarded-For "
             "decides the client address that failed sign-ins count against. A request from any other "
             "peer is counted against that peer, whatever its headers say; X-Real-Ip is never believed. "
             "The default is configurable-http-proxy on this host (it connects from loopback and appends "
             "the client's address); add a load balancer or TLS proxy in front of it here. "
             "``JupyterHub.trusted_downstream_ips`` does not do this: tornado's xheaders believe "
             "X-Real-Ip and X-Forwarded-For from anyone.",
    ).tag(config=True)

    password_checks = Integer(
        0, min=0, help="""Password hashes (argon2id: ``Database.password_memory_kib`` of memory each, 64 MiB by
        default) the hub computes at once; 0 means the machine's CPU count. Sign-ins beyond it wait their turn, so that a crowd
        signing in at once costs bounded memory (200 at once took the hub from 190 to 580 MiB unbounded).""",
    ).tag(config=True)

    password_check_nice = Integer(
        10, min=0, max=19, help="""The nice value (Linux scheduling priority, 0-19) of the threads that compute
        password hashes. Sign-ins then take the CPU that running sessions, spawns and the hub's own work leave
        over: in the 200-user load test on 2 cores, hashing at normal priority took a third of the machine's
        CPU and spawns waited past their start timeout behind it. 0 hashes at the hub's priority.""",
    ).tag(config=True)

    _hash_pool: concurrent.futures.ThreadPoolExecutor | None = None

    def _hasher(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads password hashes are computed on: ``password_checks`` of them, at
        ``password_check_nice`` (argon2's own threads inherit it). A sign-in waiting for one holds no
        thread of the hub's executor, which the hub's database work and the spawners share."""
        if self._hash_pool is None:
            nice = self.password_check_nice

            def lower_priority() -> None:
                try:
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)  # this thread only
                except OSError as e:
                    self.log.warning("Password hashes run at the hub's priority (nice %s refused: %s)", nice, e)

            self._hash_pool = concurrent.futures.ThreadPoolExecutor(
                self.password_checks or os.cpu_count() or 1, thread_name_prefix="password-check",
                initializer=lower_priority if nice else None)
        return self._hash_pool

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # fail at hub start, not at first sign-in, when the schema is missing or outdated
        self.database.ensure_schema()

    @property
    def database(self) -> Database:
        return Database.instance(parent=self)

    @property
    def rules(self) -> throttle.ThrottleRules:
        return throttle.ThrottleRules(self.max_failures, timedelta(seconds=self.failure_window),
                                      timedelta(seconds=self.lock_seconds))

    def client_address(self, handler) -> str | None:
        """The address failed sign-ins from ``handler``'s request count against (see ``trusted_proxies``)."""
        if handler is None:
            return None
        request = handler.request
        peer = forwarded.peer_address(request)
        trusted = forwarded.parse_networks(self.trusted_proxies)
        if request.headers.get("X-Forwarded-For") and not forwarded.is_trusted(peer, trusted):
            self.log.warning("Sign-in from %s carries X-Forwarded-For, but %s is not in "
                             "BackendAIAuthenticator.trusted_proxies: counted against %s", peer, peer, peer)
        return forwarded.request_client_address(request, trusted)

    async def load_managed_roles(self):
        """None up front: every role is created (and kept current) at sign-in by sync_roles.

        Returning roles here that users already hold makes JupyterHub 6.1 fail at its next start
        (KeyError in init_role_assignment unless reset_managed_roles_on_startup is set).
        """
        return []

    # -- sign-in -----------------------------------------------------------------------------------

    def _auth_model(self, user: User) -> dict:
        return {
            "name": user.username,
            "admin": user.role == UserRole.superadmin,
            "groups": hub_group_names(user),
            "roles": hub_roles(user, self.service_name),
        }

    def _refusal(self, user: User, keypair: KeyPair | None = None) -> str | None:
        if user.status != UserStatus.active:
            return f"user {user.username!r} is inactive"
        if not user.domain.is_active:
            return f"domain {user.domain.name!r} is inactive"
        if keypair is not None and not keypair.is_active:
            return f"keypair {keypair.access_key!r} is inactive"
        return None

    async def _check_credentials(self, login: str, secret: str, address: str | None) -> dict:
        """{"model": ...} | {"refused": msg, "status": n} | {}.

        Every attempt is recorded in the audit log in the same transaction as the throttle's count:
        success, failure (and the lock it led to), and refusals (locked, inactive).

        The password hash (argon2id: tens of milliseconds of CPU alone, seconds on a loaded machine) is
        checked between two transactions, never inside one, on threads of its own (:meth:`_hasher`): on
        SQLite a write transaction holds the database's one write lock, and hashing inside it made every
        other writer of the hub and the service wait (the load test's "database is locked"). The writing
        transaction reads the account again and counts the attempt as failed unless the credential it
        checked is still the one stored, and refuses it if a lock came meanwhile.
        """
        def read():
            with self.database.session(readonly=True) as s:
                account, keypair = self._find(s, login)
                locked = throttle.locked(s, self._keys(account, login, address))
            return account, keypair, locked, None if locked else self._stored(account, keypair)

        account, keypair, locked, checked = await self._in_executor(read)

        def check() -> tuple[bool, str | None]:
            ok = checked is not None and self._verify(account, keypair, login, secret)
            return ok, (hash_password(secret) if ok and keypair is None and password_needs_rehash(account.password_hash)
                        else None)

        ok, rehash = await asyncio.get_running_loop().run_in_executor(self._hasher(), check)
        return await self._in_executor(self._record_attempt, login, address, locked, checked, ok, rehash)

    def _record_attempt(self, login: str, address: str | None, locked, checked, ok: bool, rehash: str | None) -> dict:
        """The attempt's outcome, written (see :meth:`_check_credentials`)."""
        with self.database.session() as s:
            account, keypair = self._find(s, login)
            keys = self._keys(account, login, address)

            def record(status: AuditStatus, description: str = "", operation: str = "sign-in") -> None:
                actor = audit.Actor(
                    user=account.username if account is not None else None, source="hub",
                    credential=f"keypair:{keypair.access_key}" if keypair is not None else "password",
                    domain=account.domain.name if account is not None else None, client_address=address)
                audit.append(s, actor, audit.Event(
                    "user", operation, "POST hub/login", status=status, description=description,
                    entity_id=account.username if account is not None else login[:255]))

            lock = throttle.locked(s, keys) or locked  # locked when read: refused, its secret unchecked
            if lock:
                self.log.warning("Refused sign-in for %r: %s is locked", login, lock[0])
                record(AuditStatus.rejected, f"locked ({lock[0]}): too many failed sign-ins")
                return {"refused": f"too many failed sign-ins; try again in {lock[1]} seconds", "status": 429}
            # the secret was checked against what was stored then: it counts only if that is still stored
            user = account if ok and self._stored(account, keypair) == checked else None
            if user is None:
                now_locked = throttle.record_failure(s, keys, self.rules)
                self.log.warning("Failed sign-in for %r from %s", login, address)
                record(AuditStatus.rejected, "wrong credentials" if account is not None else "no such account")
                if now_locked:
                    record(AuditStatus.success, f"{', '.join(now_locked)} locked for {int(self.lock_seconds)} "
                                                "seconds after repeated failed sign-ins", operation="lock")
                return {}
            throttle.clear(s, keys[0])
            refusal = self._refusal(user, keypair)
            if refusal:
                self.log.warning("Refused sign-in for %s: %s", user.username, refusal)
                record(AuditStatus.rejected, refusal)
                return {"refused": refusal, "status": 403}
            if rehash is not None:
                user.password_hash = rehash
            if keypair is not None:  # a sign-in with the keypair is a use of it (the service notes the rest)
                keypair.last_used = datetime.now(timezone.utc)
            record(AuditStatus.success)
            return {"model": self._auth_model(user)}

    @staticmethod
    def _keys(account: User | None, login: str, address: str | None) -> list[str]:
        # the account's own name, whichever of its names (or keys) was typed: one count, one lock;
        # a login that names no account is counted as typed, so that locks do not tell them apart
        return throttle.keys_for(account.username if account is not None else login, address)

    @staticmethod
    def _stored(account: User | None, keypair: KeyPair | None) -> tuple | None:
        """What a secret is checked against: the keypair's encrypted secret key, or the password hash."""
        if keypair is not None:
            return ("keypair", keypair.access_key, keypair.secret_key_encrypted)
        return ("password", account.username if account else None, account.password_hash if account else None)

    def _find(self, s, login: str) -> tuple[User | None, KeyPair | None]:
        """The account a login names (by access key, email or username, in any case), and the keypair."""
        if ACCESS_KEY_RE.match(login):
            kp = s.get(KeyPair, login)
            return (kp.user, kp) if kp is not None else (None, None)
        col = User.email if "@" in login else User.username
        return s.scalar(select(User).where(col == login.lower())), None

    def _verify(self, user: User | None, keypair: KeyPair | None, login: str, secret: str) -> bool:
        """Whether ``secret`` is the keypair's secret key (an access key was typed) or the password."""
        if ACCESS_KEY_RE.match(login):
            try:
                stored = self.database.secrets.decrypt(keypair.secret_key_encrypted) if keypair else ""
            except CryptKeyError:
                self.log.error("Cannot decrypt the secret key of %s: check the crypt key", login)
                stored = ""
            # constant-time comparison; an unknown key compares against an empty string
            return keypair is not None and hmac.compare_digest(stored.encode(), secret.encode())
        return verify_password(user.password_hash if user else None, secret)

    async def authenticate(self, handler, data):
        """Return the hub user model for valid credentials, else None (the form shows the error)."""
        login = ((data or {}).get("username") or "").strip()
        secret = (data or {}).get("password") or ""
        if not login or not secret:
            return None
        address = self.client_address(handler)
        result = await self._check_credentials(login, secret, address)
        if "refused" in result:
            raise web.HTTPError(result["status"], result["refused"])
        return result.get("model")

    async def refresh_user(self, user, handler=None):
        """Re-mirror groups and roles from our database; sign out users who were deactivated."""
        def load():
            with self.database.session(readonly=True) as s:  # reads only: no write lock on SQLite
                try:
                    u = users.get(s, user.name)
                except NotFound:
                    return False
                if self._refusal(u):
                    return False
                return self._auth_model(u)

        return await self._in_executor(load)

    async def _in_executor(self, fn, *args):
        """``fn(*args)`` on an executor thread; a database that is down is the 503 the hub shows, not a
        failed sign-in (nor a 500)."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fn, *args)
        except ServiceUnavailable as e:
            raise web.HTTPError(503, e.message) from None
