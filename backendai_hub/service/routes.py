"""The service's route type: a URL pattern, its handler, and what the OpenAPI document says of each method.

Every handler module declares ``ROUTES: list[Route]``; :mod:`.app` joins them into one list that
both tornado and :func:`backendai_hub.service.openapi.build_spec` read, so a route cannot be served
without being described, nor described without being served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from ..resources import Resource

METHODS = ("get", "post", "patch", "delete")


@dataclass(frozen=True)
class Op:
    """One method of a route as the OpenAPI document describes it.

    ``answer`` names the component schema of the answer, ``page`` that of the items of a paginated
    answer; with neither, the answer is a JSON object (or nothing, for ``status`` 204).
    """

    summary: str = ""
    status: str = "200"
    answer: str | None = None
    page: str | None = None
    body: Mapping[str, dict] | None = None  # the JSON body's properties (additionalProperties: false)
    body_required: bool = True
    query: tuple[str | tuple[str, dict], ...] = ()  # a name (a string parameter) or (name, schema)
    headers: tuple[dict, ...] = ()  # OpenAPI header parameter objects
    errors: Mapping[str, str] = field(default_factory=dict)  # further error statuses -> description
    responses: Mapping[str, dict] = field(default_factory=dict)  # further responses, verbatim
    binary: str | None = None  # a description: the answer is a byte stream, not JSON


@dataclass(frozen=True)
class Route:
    """``pattern`` is relative to ``{prefix}api/v1/`` (a tornado regex); ``params`` names its groups."""

    pattern: str
    handler: type
    params: tuple[str, ...] = ()
    tag: str = ""
    ops: Mapping[str, Op] = field(default_factory=dict)
    conflicts: str | None = "duplicate or conflicting"  # the 409 of its writes, if any

    def __post_init__(self):
        groups = re.compile(self.pattern).groups
        if groups != len(self.params):
            raise ValueError(f"route {self.pattern!r}: {groups} group(s) but params {self.params!r}")
        unknown = set(self.ops) - set(self.methods)
        if unknown:
            raise ValueError(f"route {self.pattern!r}: {sorted(unknown)} described but not handled")

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods the handler class defines itself (what the route serves)."""
        return tuple(m for m in METHODS if m in self.handler.__dict__)

    @property
    def template(self) -> str:
        """``users/([^/]+)`` with params ("username",) -> ``users/{username}``."""
        names = iter(self.params)
        return re.sub(r"\([^)]*\)", lambda _m: "{" + next(names) + "}", self.pattern)

    def op(self, method: str) -> Op:
        return self.ops.get(method, Op())

    def tornado(self, api: str) -> tuple[str, type]:
        return (f"{api}{self.pattern}/?", self.handler)


def resource_routes(res: Resource, collection: type, item: type) -> list[Route]:
    """The two routes of a tenancy resource: its collection and one object, described by the registry."""
    ref = res.schema
    written = {"409": "duplicate or conflicting"}
    return [
        Route(res.path, collection, tag=res.path, ops={
            "get": Op(page=ref, query=res.filters),
            "post": Op(status="201", answer=ref, body=res.create_fields, errors=written)}),
        Route(f"{res.path}/" + "/".join(["([^/]+)"] * len(res.key)), item, params=res.key, tag=res.path, ops={
            "get": Op(answer=ref),
            "patch": Op(answer=ref, body=res.update_fields, errors=written),
            "delete": Op(status="204", errors={"409": "still in use"})}),
    ]
