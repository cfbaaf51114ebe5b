"""Base handler of the REST service: authentication, JSON in and out, errors, pagination."""

from __future__ import annotations

import asyncio
import functools
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, TypeVar

from jupyterhub.services.auth import HubOAuth
from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado import web

from .. import signing
from .. import validation as V
from ..db import Database, unavailable_error
from ..errors import Forbidden, InvalidInput, TenancyError, Unauthorized
from ..models import Domain, User
from . import principals
from .key_use import KeyUse
from .auditing import WRITING_METHODS, Auditing, auditing
from .rules import DOMAIN_ADMIN, SUPERADMIN, USER, Principal

T = TypeVar("T")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _parse_int(text: str) -> int | Decimal:
    """JSON integers; one too long for ``int()`` stays a Decimal, so the field's parser names it."""
    return int(text) if len(text) <= V.MAX_NUMBER_TEXT else Decimal(text)


class APIHandler(Auditing, web.RequestHandler):
    """JSON API handler: every request is authenticated by a hub token or a keypair signature."""

    principal: Principal

    @property
    def db(self) -> Database:
        return self.settings["db"]

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Request-ID", self.request_id)  # also on errors (send_error clears headers)

    async def run(self, fn: Callable[[Session], T], readonly: bool | None = None) -> T:
        """Run ``fn(session)`` in one transaction on an executor thread (the DB is blocking I/O).

        GET and HEAD requests read only (no write lock on SQLite) unless told otherwise. The first
        transaction of a request whose credential came from the principal cache also confirms it,
        before ``fn``: one transaction per request (see ``_Unconfirmed``).
        """
        if readonly is None:
            readonly = self.request.method in ("GET", "HEAD")
        if not readonly and self.audit_event is not None and not (self._audit_written or self.audit_deferred):
            fn = self._recording(fn)
        if self._unconfirmed is not None and not self._in_method:
            await self._confirm_now()  # not the handler method's (an overridden authenticate's): no restart
        pending = self._unconfirmed
        if pending is None:
            return await self._transaction(fn, readonly)
        if self._refused is not None:
            raise self._refused
        confirmed: list[principals.Credential] = []

        def confirm_then(s: Session):
            try:
                cred = pending.confirm(s)
            except Unauthorized as e:
                raise _Refused(e) from None
            confirmed.append(cred)
            if cred.principal != self.principal:
                raise _Changed  # rolls back; the handler starts over with the fresh principal
            return fn(s)

        try:
            return await self._transaction(confirm_then, readonly)
        except _Refused as r:
            self._refuse(pending, r.error)
            raise r.error from None
        except _Changed:
            self._settle(pending, confirmed[0])
            raise _Restart from None
        finally:
            if confirmed and self._unconfirmed is pending:
                self._settle(pending, confirmed[0])  # confirmed, whatever ``fn`` did next

    async def _transaction(self, fn: Callable[[Session], T], readonly: bool) -> T:
        def work():
            with self.db.session(readonly=readonly) as s:
                return fn(s)

        try:
            result = await asyncio.get_running_loop().run_in_executor(None, work)
        except BaseException:
            self._audit_pending = False  # rolled back, and the row with it
            raise
        if self._audit_pending:
            self._audit_pending, self._audit_written = False, True  # committed with the change
        return result

    # -- authentication ---------------------------------------------------------------------------
    #
    # A request's credential is checked against a principal cache first: a hit verifies the signature
    # with the cached secret (no database), and the principal it names is *unconfirmed* until the
    # database agrees, inside the handler's first transaction (``run``). Until then nothing is sent:
    # ``finish`` waits for the handler to return and ``flush`` confirms first. A credential revoked
    # meanwhile (keypair, user or domain deactivated, keypair deleted or reissued: through this
    # service, the CLI or anything else writing the database) is refused with the 401 a cache miss
    # would give; a principal whose role, domain or groups changed makes the handler start over with
    # the fresh one. A handler that finishes without a transaction is confirmed in one of its own.

    _unconfirmed: _Unconfirmed | None = None
    _refused: Unauthorized | None = None
    _in_method = False
    _finish_deferred = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _HTTP_METHODS:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_confirms_principal", False):
                method = _confirming(method)
                setattr(cls, name, auditing(method, unrecorded=_UNRECORDED) if name.upper() in WRITING_METHODS
                        else method)
        prepare = cls.__dict__.get("prepare")
        if prepare is not None and not getattr(prepare, "_audits", False):
            cls.prepare = auditing(prepare, success=False, unrecorded=_UNRECORDED)

    @property
    def key_use(self) -> KeyUse:
        return self.settings.setdefault("key_use", KeyUse())

    @property
    def principal_cache(self) -> principals.PrincipalCache:
        return self.settings.setdefault("principal_cache", principals.PrincipalCache())

    # whether a session's server token (the vfolder scope only, see principals.token_principal) may
    # call this handler: the vfolder routes say so; every other route refuses it
    session_token_ok = False

    async def prepare(self):
        self.principal = await self.authenticate()
        if self.principal.from_session and not self.session_token_ok:
            raise Forbidden("a session's server token reaches only the vfolder API (rule session-token): "
                            "use a token with custom:backendai:self or a keypair for this route")
        self._start_audit()
        if self._unconfirmed is not None:
            method = getattr(type(self), self.request.method.lower(), None)
            if type(self).prepare is not APIHandler.prepare or not getattr(method, "_confirms_principal", False):
                await self._confirm_now()  # something acts before a handler method could confirm it

    async def authenticate(self) -> Principal:
        header = self.request.headers.get("Authorization", "")
        if header.startswith("BackendAI "):
            return await self._from_signature()
        model = await self.settings["hub_auth"].get_user(self, sync=False)
        if model and model.get("kind", "user") == "user":
            return await self._from_hub_model(model["name"], frozenset(model.get("scopes", [])))
        self._refuse_cookie_without_xsrf()
        raise Unauthorized("authenticate with a hub token (Authorization: token …) or a Backend.AI "
                           "keypair signature")

    def _refuse_cookie_without_xsrf(self) -> None:
        """A browser's sign-in cookie (the hub's OAuth, see pages.py) without the page's XSRF token: the
        hub's HubOAuth ignored the cookie, and the caller hears a 403 naming the rule, not a bare 401."""
        hub_auth = self.settings["hub_auth"]
        if not isinstance(hub_auth, HubOAuth) or not self.get_secure_cookie(hub_auth.cookie_name):
            return
        try:
            self.check_xsrf_cookie()  # HubOAuth's check (get_user patched it in): a token, or the cookie's
        except web.HTTPError as e:
            raise Forbidden(f"{e.log_message}: a request signed in by the hub's cookie must carry the page's "
                            "XSRF token (an X-XSRFToken header or the _xsrf argument)") from None

    async def _from_hub_model(self, username: str, scopes: frozenset[str]) -> Principal:
        key = ("token", username, scopes)
        derive = functools.partial(principals.derive_token, username=username, scopes=scopes)
        cached = self.principal_cache.get(key)
        if cached is not None:
            self._unconfirmed = _Unconfirmed(key, cached, derive)
            return cached.principal
        cred = await self._transaction(derive, readonly=True)
        self.principal_cache.put(key, cred)
        return cred.principal

    async def _from_signature(self) -> Principal:
        replay_cache, skew, req = self.settings["replay_cache"], self.settings["max_clock_skew"], self.request
        now = datetime.now(timezone.utc)

        def verify(lookup_secret, replay: bool) -> signing.SignedRequest:
            return signing.verify(req.method, req.uri, req.headers, lookup_secret=lookup_secret, now=now,
                                  max_skew=skew, replay_cache=replay_cache if replay else None)

        used: list[tuple[tuple, principals.Credential]] = []

        def cached_secret(access_key: str) -> str | None:
            key = ("keypair", access_key)
            cred = self.principal_cache.get(key)
            if cred is not None:
                used.append((key, cred))
            return cred.secret if cred is not None else None

        try:
            verify(cached_secret, True)
        except signing.SignatureError as e:
            if used:
                # a mismatch or a replay with a cached secret: the database tells which, exactly as
                # without the cache (the key may be gone or reissued)
                self.principal_cache.forget(used[0][0])
            elif e.reason != "unknown-key":
                raise Unauthorized(str(e)) from None  # refused before any secret was needed
        else:
            key, cred = used[0]
            confirm = functools.partial(principals.confirm_signed, secrets=self.db.secrets, verify=verify,
                                        access_key=key[1], cached=cred)
            self._unconfirmed = _Unconfirmed(key, cred, confirm)
            return cred.principal
        access_key, cred = await self._transaction(
            functools.partial(principals.derive_signed, secrets=self.db.secrets, verify=verify), readonly=True)
        self.principal_cache.put(("keypair", access_key), cred)
        return cred.principal

    async def _confirm_now(self) -> bool:
        """Confirm the cached principal in a transaction of its own; True when it changed (and was replaced)."""
        pending = self._unconfirmed
        if pending is None:
            return False
        if self._refused is not None:
            raise self._refused
        try:
            cred = await self._transaction(pending.confirm, readonly=True)
        except Unauthorized as e:
            self._refuse(pending, e)
            raise
        changed = cred.principal != self.principal
        self._settle(pending, cred)
        return changed

    def _settle(self, pending: _Unconfirmed, cred: principals.Credential) -> None:
        self._unconfirmed = None
        self.principal = cred.principal
        if cred != pending.cached:
            self.principal_cache.put(pending.key, cred)

    def _refuse(self, pending: _Unconfirmed, error: Unauthorized) -> None:
        self._refused = error  # stays unconfirmed: nothing may be sent but the refusal
        self.principal_cache.forget(pending.key)

    async def _call_unconfirmed(self, method, args, kwargs) -> None:
        """Run a handler method whose principal is unconfirmed; see the comment above ``prepare``."""
        while True:
            self._in_method = True
            try:
                result = method(self, *args, **kwargs)
                if result is not None:
                    await result
            except _Restart:
                self._start_over()
                continue
            except Exception:
                self._in_method = False
                if self._unconfirmed is not None and await self._confirm_now():  # refused: raises the 401
                    self._start_over()
                    continue
                if self._finish_deferred:
                    self._finish_deferred = False
                    self.finish()  # finished, then failed: what was finished is sent, as without the cache
                raise
            finally:
                self._in_method = False
            if self._unconfirmed is not None:
                try:
                    changed = await self._confirm_now()
                except Unauthorized:
                    self._start_over()
                    raise
                if changed:
                    self._start_over()
                    continue
            if self._finish_deferred:
                self._finish_deferred = False
                self.finish()
            return

    def _start_over(self) -> None:
        self.clear()
        self._finish_deferred = False

    def finish(self, chunk=None):
        if self._unconfirmed is not None and self._in_method:
            if chunk is not None:
                self.write(chunk)
            self._finish_deferred = True  # sent once the principal is confirmed (_call_unconfirmed)
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return super().finish(chunk)

    def flush(self, include_footers: bool = False):
        if self._unconfirmed is not None and self._in_method:
            return asyncio.ensure_future(self._flush_confirmed(include_footers))
        return super().flush(include_footers)

    async def _flush_confirmed(self, include_footers: bool) -> None:
        if await self._confirm_now():
            raise _Restart
        await super().flush(include_footers)

    @staticmethod
    def check_active(user: User) -> None:
        principals.check_active(user.username, user.status, user.domain.name, user.domain.is_active)

    @staticmethod
    def make_principal(user: User, role: str, admin_domains, via: str, access_key: str | None = None) -> Principal:
        assert role in (SUPERADMIN, DOMAIN_ADMIN, USER)
        return Principal(username=user.username, role=role, domain=user.domain.name, via=via,
                         admin_domains=frozenset(admin_domains),
                         groups=frozenset(g.name for g in user.groups), access_key=access_key)

    def allowed_policies(self, s: Session, domain: str, changes: dict) -> dict[str, list[str]]:
        """The policies ``domain``'s admins may assign, when ``changes`` assigns one (else nothing to check)."""
        if "resource_policy" not in changes or self.principal.is_superadmin:
            return {}
        d = s.scalar(select(Domain).where(Domain.name == domain)) if isinstance(domain, str) else None
        return dict(d.allowed_resource_policies or {}) if d is not None else {}

    # -- input and output ---------------------------------------------------------------------------

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body, parse_int=_parse_int)
        except (ValueError, UnicodeDecodeError):
            raise InvalidInput("body: not valid JSON", field="body") from None
        except RecursionError:  # "[[[[…" a hundred thousand deep: the parser's stack, not our bug
            raise InvalidInput("body: nested too deeply", field="body") from None
        if not isinstance(data, dict):
            raise InvalidInput("body: must be a JSON object", field="body")
        try:  # "\ud800" is valid JSON but no text: nothing below could store or compare it
            json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
        except RecursionError:
            raise InvalidInput("body: nested too deeply", field="body") from None
        except UnicodeEncodeError:
            raise InvalidInput("body: contains an unpaired surrogate (\\ud800-\\udfff), which is not text",
                               field="body") from None
        self._parsed_body = data
        return data

    def page(self) -> tuple[int, int]:
        def arg(name: str, default: int, maximum: int | None = None) -> int:
            raw = self.get_query_argument(name, str(default))
            try:
                value = int(raw)
            except ValueError:
                raise InvalidInput(f"{name}: {raw!r} is not an integer", field=name) from None
            if value < 0 or (maximum is not None and value > maximum):
                raise InvalidInput(f"{name}: must be between 0 and {maximum or 'any'}", field=name)
            return value

        return arg("limit", DEFAULT_LIMIT, MAX_LIMIT), arg("offset", 0)

    def write_page(self, items: list[dict]) -> None:
        limit, offset = self.page()
        self.write_json({"items": items[offset:offset + limit], "total": len(items), "limit": limit,
                         "offset": offset})

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def query(self, name: str) -> str | None:
        value = self.get_query_argument(name, None)
        return value if value else None

    # whether a successful write here may take away someone's access to a folder (see on_finish)
    may_revoke_access = True

    def on_finish(self):
        principal = getattr(self, "principal", None)
        if principal is not None and principal.via == "keypair" and principal.access_key and self.get_status() != 401:
            self.key_use.seen(principal.access_key, datetime.now(timezone.utc))  # written by server.py's flush
        # a change may have revoked someone's access to a folder a running session mounts: the culler
        # stops such sessions at once instead of at its next pass
        culler = self.settings.get("culler")
        if (culler is not None and self.may_revoke_access and self.get_status() < 400
                and self.request.method not in ("GET", "HEAD", "OPTIONS")):
            culler.poke()

    # -- errors --------------------------------------------------------------------------------------

    def log_exception(self, typ, value, tb):
        if isinstance(value, TenancyError):
            return  # expected: reported to the caller, not a server fault
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, TenancyError):
            self.set_status(exc.status)
            for name, value in exc.headers.items():  # Retry-After of a 503
                self.set_header(name, value)
            if exc.status == 401:
                self.set_header("WWW-Authenticate", 'BackendAI signMethod="HMAC-SHA256"')
            self.finish(json.dumps(exc.to_json()))
            return
        reason = getattr(exc, "log_message", None) or self._reason
        self.finish(json.dumps({"error": self._reason.replace(" ", ""), "message": reason}))

    def _handle_request_exception(self, e: BaseException) -> None:
        e = unavailable_error(e, self.db.retry_after) or e  # a database error outside db.session(): 503
        if isinstance(e, TenancyError):
            if self._finished:
                return
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


_HTTP_METHODS = ("get", "head", "post", "delete", "patch", "put", "options")
class _Unconfirmed:
    """A principal taken from the cache: ``confirm(session)`` derives the credential afresh (raising
    Unauthorized when it is refused now), to be compared with ``cached``."""

    __slots__ = ("cached", "confirm", "key")

    def __init__(self, key, cached: principals.Credential, confirm: Callable[[Session], principals.Credential]):
        self.key, self.cached, self.confirm = key, cached, confirm


class _Changed(Exception):
    """Inside a transaction: the principal is not the cached one (rolled back before the handler's work)."""


class _Restart(Exception):
    """The handler acted on a principal that changed meanwhile: it starts over with the fresh one."""


class _Refused(Exception):
    def __init__(self, error: Unauthorized):
        self.error = error


def _confirming(method):
    """Wrap a handler method so that its unconfirmed principal is confirmed before anything is sent."""

    @functools.wraps(method)
    async def handle(self, *args, **kwargs):
        if self._unconfirmed is None or self._in_method:  # nothing to confirm, or a super() call
            result = method(self, *args, **kwargs)
            if result is not None:
                await result
            return
        await self._call_unconfirmed(method, args, kwargs)

    handle._confirms_principal = True
    return handle


_UNRECORDED = (Unauthorized, _Restart)  # refused at authentication; started over (not an outcome)


class NotFoundHandler(APIHandler):
    """Unknown routes under the API prefix answer a JSON 404 (after authentication)."""

    audited = False  # nothing is there to change

    async def prepare(self):
        raise web.HTTPError(404, f"no such route: {self.request.path}")
