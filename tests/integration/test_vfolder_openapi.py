"""The vfolder part of the OpenAPI document: valid 3.0, and true to the routes the handlers serve."""

import re

import jsonschema
from schemathesis.specs.openapi.definitions import OPENAPI_30
from tornado import web

from backendai_hub.service.app import API_ROUTES, SCHEMAS
from backendai_hub.service.openapi import build_spec

PREFIX = "/services/backendai/"
VFOLDER_ROUTES = [r for r in API_ROUTES if r.tag == "vfolders"]


def test_spec_with_vfolders_is_valid_and_true_to_the_routes():
    spec = build_spec(API_ROUTES, SCHEMAS, PREFIX)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft4Validator(OPENAPI_30).iter_errors(spec)]
    assert errors == []
    assert VFOLDER_ROUTES
    served = set()
    for route in VFOLDER_ROUTES:
        for method in ("get", "post", "patch", "delete"):
            if getattr(route.handler, method) is not getattr(web.RequestHandler, method):
                served.add((f"{PREFIX}api/v1/" + re.sub(r"\([^)]*\)", "{}", route.pattern), method))
    vfolder_paths = build_spec(VFOLDER_ROUTES, SCHEMAS, PREFIX)["paths"]
    documented = {(re.sub(r"\{[^}]*\}", "{}", p), m) for p, ops in vfolder_paths.items() for m in ops}
    assert documented == served
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in vfolder_paths.items():
        for op in ops.values():
            declared = sorted(p["name"] for p in op.get("parameters", []) if p["in"] == "path")
            assert declared == sorted(re.findall(r"\{([^}]+)\}", path))
