"""The OpenAPI 3.0 document of the REST service, built from its one route list and component schemas."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from .. import __version__
from .routes import Op, Route

ERROR_SCHEMA = {"error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}
PAGE_QUERY = (("limit", {"type": "integer", "minimum": 0, "maximum": 1000}), ("offset", {"type": "integer", "minimum": 0}))


def error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {"400": "invalid input; `field` names it", "401": "not authenticated",
          "403": "a rule denies it; `message` names the rule", "404": "unknown"}


def _query(item: str | tuple[str, dict]) -> dict:
    name, schema = (item, {"type": "string"}) if isinstance(item, str) else item
    return {"name": name, "in": "query", "schema": schema}


def _operation(route: Route, method: str, op: Op) -> dict:
    template = route.template
    responses: dict[str, Any] = {code: error(text) for code, text in {**ERRORS, **op.errors}.items()}
    ref = {"$ref": f"#/components/schemas/{op.answer}"} if op.answer else {"type": "object"}
    query = [_query(q) for q in op.query]
    if op.page:
        query = [_query(q) for q in PAGE_QUERY] + query
        responses["200"] = {"description": "a page", "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": {
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{op.page}"}},
                "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}}}}}
    elif op.binary:
        responses[op.status] = {"description": op.binary, "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    elif op.status == "204":
        responses["204"] = {"description": "done"}
    else:
        responses[op.status] = {"description": "done", "content": {"application/json": {"schema": ref}}}
    responses.update(op.responses)
    summary = op.summary or (route.handler.__doc__ or "").strip().split("\n")[0]
    out: dict[str, Any] = {
        "tags": [route.tag or template.split("/")[0]],
        "operationId": f"{method}_{template.replace('/', '_').replace('-', '_').replace('{', '').replace('}', '')}",
        "security": [{"hubToken": []}, {"backendaiSignature": []}],
        "responses": responses,
    }
    if summary:
        out["summary"] = summary
    parameters = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in route.params]
    parameters += query + list(op.headers)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": {
            "type": "object", "properties": dict(op.body), "additionalProperties": False}}}}
    return out


def build_spec(routes: Iterable[Route], schemas: Mapping[str, Mapping[str, dict]], prefix: str) -> dict:
    """The document for ``routes`` (relative to ``{prefix}api/v1/``); ``schemas`` maps a component
    name to its properties."""
    paths: dict[str, dict] = {}
    for route in routes:
        ops = {m: _operation(route, m, route.op(m)) for m in route.methods}
        if ops:
            paths[f"{prefix}api/v1/{route.template}"] = ops
    return {
        "openapi": "3.0.3",
        "info": {"title": "backendai-hub REST API", "version": __version__,
                 "description": "Tenancy administration (domains, groups, users, keypairs, resource policies), "
                                "sessions, images, agents and virtual folders."},
        "paths": paths,
        "components": {
            "schemas": {name: {"type": "object", "properties": dict(props)}
                        for name, props in {**schemas, "Error": ERROR_SCHEMA}.items()},
            "securitySchemes": {
                "hubToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                             "description": "`token <JupyterHub API token>` carrying custom:backendai:* scopes"},
                "backendaiSignature": {"type": "apiKey", "in": "header", "name": "Authorization",
                                       "description": "Backend.AI keypair HMAC-SHA256 signature"},
            },
        },
    }
