"""The audit log as the service writes it: one row per writing request (see :mod:`backendai_hub.audit`).

Every POST, PATCH, PUT and DELETE that passed authentication leaves exactly one audit row: the first
writing transaction of the request (``APIHandler.run``) appends the success row in itself, so a
change that rolls back takes its row with it; a request that fails is recorded, in a transaction of
its own, as rejected (a 4xx: the reason is the description) or error; a request that succeeds
without writing the database (a file written in a folder) is recorded when its method returns.
Requests refused at authentication (401) are not recorded: there is no actor to name.

:class:`Auditing` is the handler's part (a mixin of ``APIHandler``); :func:`auditing` wraps the writing
methods and ``prepare`` of every handler class (``APIHandler.__init_subclass__``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from typing import Callable, TypeVar
from urllib.parse import unquote

from sqlalchemy.orm import Session

from .. import audit

T = TypeVar("T")
log = logging.getLogger("backendai_hub.service")

WRITING_METHODS = ("POST", "PATCH", "PUT", "DELETE")
# first path segments whose entity type is not the segment made singular
ENTITY_TYPES = {"folders": "vfolder", "resource-policies": "policy", "admin": "graphql"}


class Auditing:
    """What a handler records of its request; ``APIHandler`` mixes it in."""

    audit_event: audit.Event | None = None
    _audit_written = False
    _audit_pending = False  # set by a writing transaction's row, until it commits (APIHandler._transaction)
    _parsed_body: dict | None = None  # what body() parsed
    audited = True  # False: a handler whose writing methods change nothing (a query sent as POST)
    audit_deferred = False  # True: writes do not record (yet); the handler says when one does
    audit_ops: dict[str, str] = {}  # METHOD -> operation, where the path does not say it
    audit_entity: str | None = None  # the entity type, where the path's first segment does not say it

    def audit_operation(self) -> str:
        """create / update / delete, or the action a POST names (``vfolders/x/share``: share)."""
        method = self.request.method
        if method in self.audit_ops:
            return self.audit_ops[method]
        last = self._audit_segments()[-1]
        if method in ("POST", "DELETE") and self.path_args and last != "*":
            return last  # vfolders/x/share, folders/x/unshare
        return {"POST": "create", "PATCH": "update", "PUT": "update", "DELETE": "delete"}[method]

    def audit_entity_type(self) -> str:
        if self.audit_entity:
            return self.audit_entity
        first = self._audit_segments()[0]
        return ENTITY_TYPES.get(first) or (first[:-3] + "y" if first.endswith("ies") else first.rstrip("s"))

    def _audit_relative(self) -> tuple[str, str]:
        """(source, the path under the service prefix without api/v1/)."""
        prefix = self.settings.get("service_prefix", "/")
        rel = self.request.path[len(prefix):] if self.request.path.startswith(prefix) else self.request.path
        rel = rel.strip("/")
        if rel.startswith("api/v1/"):
            return "rest", rel[len("api/v1/"):]
        return "backendai", rel

    def _audit_segments(self) -> list[str]:
        args = {str(a) for a in self.path_args or ()}
        return [("*" if unquote(seg) in args else seg) for seg in self._audit_relative()[1].split("/")] or ["?"]

    def _start_audit(self) -> None:
        method = self.request.method
        if not self.audited or method not in WRITING_METHODS:
            return
        source, _ = self._audit_relative()
        template = "/".join(self._audit_segments())
        self.audit_event = audit.Event(
            self.audit_entity_type(), self.audit_operation(),
            f"{method} {'api/v1/' if source == 'rest' else ''}{template}",
            entity_id="/".join(str(a) for a in self.path_args) if self.path_args else None)
        self._audit_source = source

    def audit_actor(self) -> audit.Actor:
        p = self.principal
        credential = f"keypair:{p.access_key}" if p.access_key else p.via
        return audit.Actor(user=p.username, source=self._audit_source, credential=credential, domain=p.domain,
                           client_address=self.request.remote_ip, request_id=self.request_id)

    def _recording(self, fn: Callable[[Session], T]) -> Callable[[Session], T]:
        def work(s: Session) -> T:
            self._audit_pending = False
            result = fn(s)
            event = self.audit_event
            if event is not None and not self._audit_written:
                if event.entity_id is None:
                    event.entity_id = entity_id(result, self)
                audit.append(s, self.audit_actor(), event)
                self._audit_pending = True
            return result

        return work

    async def _record_audit(self, exc: BaseException | None) -> None:
        """Record the request's outcome in a transaction of its own, unless a write already did."""
        event = self.audit_event
        if event is None or self._audit_written:
            return
        self._audit_written = True
        if event.entity_id is None:
            event.entity_id = entity_id(None, self)
        if exc is not None:
            event = event.failed(exc)
        actor = self.audit_actor()
        await asyncio.get_running_loop().run_in_executor(None, audit.record, self.db, actor, event)

    @property
    def request_id(self) -> str:
        rid = getattr(self, "_request_id", None)
        if rid is None:
            rid = self._request_id = uuid.uuid4().hex
        return rid


def entity_id(result, handler: Auditing) -> str | None:
    """What a create made: its key in the answer (or in the body, for answers without one)."""
    if isinstance(result, dict):
        for key in ("access_key", "username", "name", "id"):
            if result.get(key) not in (None, ""):
                return str(result[key])
    body = handler._parsed_body  # what the handler's body() parsed, if it got that far: never parsed again
    if isinstance(body, dict):
        for key in ("username", "name", "access_key", "user"):
            if isinstance(body.get(key), str):
                return body[key][:255]
    return None


def auditing(method, success: bool = True, unrecorded: tuple[type[BaseException], ...] = ()):
    """Wrap a handler method so that its request's outcome is recorded (a failure, and with
    ``success`` a success no transaction recorded); ``unrecorded`` exceptions pass untouched."""

    @functools.wraps(method)
    async def handle(self, *args, **kwargs):
        try:
            result = method(self, *args, **kwargs)
            if result is not None:
                await result
        except Exception as e:
            if not isinstance(e, unrecorded) and self.audit_event is not None:
                try:
                    await self._record_audit(e)
                except Exception:  # the database is down, say: the caller gets the original error
                    log.exception("could not record a failed %s in the audit log", self.request.method)
            raise
        if success:
            await self._record_audit(None)

    handle._audits = True
    handle._confirms_principal = getattr(method, "_confirms_principal", False)
    return handle
