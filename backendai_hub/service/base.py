"""Base handler of the REST service: authentication, JSON in and out, errors, pagination."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any, Callable, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from tornado import web

from .. import signing
from .. import validation as V
from ..db import Database
from ..errors import InvalidInput, TenancyError, Unauthorized
from ..models import Domain, KeyPair, User, UserRole, UserStatus
from .rules import DOMAIN_ADMIN, SUPERADMIN, USER, Principal, role_from_scopes

T = TypeVar("T")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def _parse_int(text: str) -> int | Decimal:
    """JSON integers; one too long for ``int()`` stays a Decimal, so the field's parser names it."""
    return int(text) if len(text) <= V.MAX_NUMBER_TEXT else Decimal(text)


class APIHandler(web.RequestHandler):
    """JSON API handler: every request is authenticated by a hub token or a keypair signature."""

    principal: Principal

    @property
    def db(self) -> Database:
        return self.settings["db"]

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    async def run(self, fn: Callable[[Session], T], readonly: bool | None = None) -> T:
        """Run ``fn(session)`` in one transaction on an executor thread (the DB is blocking I/O).

        GET and HEAD requests read only (no write lock on SQLite) unless told otherwise.
        """
        if readonly is None:
            readonly = self.request.method in ("GET", "HEAD")

        def work():
            with self.db.session(readonly=readonly) as s:
                return fn(s)

        return await asyncio.get_running_loop().run_in_executor(None, work)

    # -- authentication ---------------------------------------------------------------------------

    async def prepare(self):
        self.principal = await self.authenticate()

    async def authenticate(self) -> Principal:
        header = self.request.headers.get("Authorization", "")
        if header.startswith("BackendAI "):
            return await self._from_signature()
        model = await self.settings["hub_auth"].get_user(self, sync=False)
        if model and model.get("kind", "user") == "user":
            return await self.run(lambda s: self._from_hub_model(s, model), readonly=True)
        raise Unauthorized("authenticate with a hub token (Authorization: token …) or a Backend.AI "
                           "keypair signature")

    def _from_hub_model(self, s: Session, model: dict) -> Principal:
        user = s.query(User).filter(User.username == model["name"]).one_or_none()
        if user is None:
            raise Unauthorized(f"hub user {model['name']!r} has no backendai-hub account")
        self.check_active(user)
        reach = role_from_scopes(set(model.get("scopes", [])), user.role.value, user.domain.name)
        if reach is None:
            raise Unauthorized("this token carries no custom:backendai:* scope; sign in again or "
                               "request a token with those scopes")
        role, admin_domains = reach
        return self.make_principal(user, role, admin_domains, via="token")

    async def _from_signature(self) -> Principal:
        cache = self.settings["replay_cache"]
        skew = self.settings["max_clock_skew"]
        req = self.request

        def work(s: Session):
            def lookup(access_key: str) -> str | None:
                kp = s.get(KeyPair, access_key)
                return self.db.secrets.decrypt(kp.secret_key_encrypted) if kp is not None else None

            try:
                signed = signing.verify(req.method, req.uri, req.headers, lookup_secret=lookup,
                                        max_skew=skew, replay_cache=cache)
            except signing.SignatureError as e:
                raise Unauthorized(str(e)) from None
            kp = s.get(KeyPair, signed.access_key, options=[
                selectinload(KeyPair.user).selectinload(User.domain),
                selectinload(KeyPair.user).selectinload(User.groups)])
            if not kp.is_active:
                raise Unauthorized(f"keypair {kp.access_key!r} is inactive")
            self.check_active(kp.user)
            user = kp.user
            admin_domains = frozenset({user.domain.name}) if user.role == UserRole.domain_admin else frozenset()
            return self.make_principal(user, user.role.value, admin_domains, via="keypair",
                                   access_key=kp.access_key)

        return await self.run(work, readonly=True)

    @staticmethod
    def check_active(user: User) -> None:
        if user.status != UserStatus.active:
            raise Unauthorized(f"user {user.username!r} is inactive")
        if not user.domain.is_active:
            raise Unauthorized(f"domain {user.domain.name!r} is inactive")

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
            if exc.status == 401:
                self.set_header("WWW-Authenticate", 'BackendAI signMethod="HMAC-SHA256"')
            self.finish(json.dumps(exc.to_json()))
            return
        reason = getattr(exc, "log_message", None) or self._reason
        self.finish(json.dumps({"error": self._reason.replace(" ", ""), "message": reason}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, TenancyError):
            if self._finished:
                return
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class NotFoundHandler(APIHandler):
    """Unknown routes under the API prefix answer a JSON 404 (after authentication)."""

    async def prepare(self):
        raise web.HTTPError(404, f"no such route: {self.request.path}")
