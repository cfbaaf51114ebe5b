"""The CLI's commands: each takes a back end (or, for database-only verbs, the database) and the arguments."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Sequence

from sqlalchemy import select

from .. import audit, code_logs, fixtures
from .. import validation as V
from ..accelerators import Accelerators
from ..accelerators.inventory import Inventory, live_holders, render_table
from ..db import Database, current_revision, head_revision
from ..keys import generate_password
from ..models import AuditLog, AuditStatus
from ..resources import REGISTRY
from .output import emit

FIXTURE_COLUMNS = ("kind", "name", "action", "present")


class UsageError(Exception):
    """Bad command-line input that argparse itself cannot see."""


def columns(resource: str) -> Sequence[str]:
    return FIXTURE_COLUMNS if resource == "fixture" else REGISTRY[resource].columns


UNLIMITED_WORDS = ("none", "unlimited")
NULLABLE = ("max_concurrent_sessions", "max_session_lifetime", "idle_timeout", "idle_timeout_accelerator",
            "max_vfolder_count", "max_quota_size", "max_quota_scope_size")


def _data(args: argparse.Namespace, drop: Sequence[str] = ()) -> dict:
    """Only the options the user gave (subparsers use argparse.SUPPRESS as default)."""
    skip = {"resource", "verb", "output", "db_url", "endpoint", "func", *drop}
    out = {}
    for k, v in vars(args).items():
        if k in skip:
            continue
        if k in NULLABLE and isinstance(v, str) and v.lower() in UNLIMITED_WORDS:
            v = None
        out[k] = v
    return out


def _out(args) -> str:
    return getattr(args, "output", "table")


def _one(args, kind: str, obj: dict) -> None:
    emit(obj, columns(kind), _out(args), single=True)


def cmd_db_upgrade(db: Database, args) -> None:
    db.upgrade()
    print(f"database at revision {current_revision(db.engine)}")


def cmd_db_current(db: Database, args) -> None:
    rev = current_revision(db.engine)
    emit({"current": rev, "head": head_revision()}, (), _out(args), single=True)


def _key(args) -> tuple:
    """The object a command names: its resource's key, from the positionals (see the registry)."""
    return tuple(getattr(args, a) for a in REGISTRY[args.resource].key)


def _read_password() -> str:
    if sys.stdin.isatty():
        pw = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != pw:
            raise UsageError("passwords do not match")
        return pw
    return sys.stdin.readline().rstrip("\n")


def cmd_create(backend, args):
    resource = args.resource
    data = _data(args, ("password_stdin", "no_password"))
    generated = None
    if resource == "user":
        if getattr(args, "password_stdin", False):
            data["password"] = _read_password()
        elif getattr(args, "no_password", False):
            data["password"] = None
        elif "password" not in data:
            data["password"] = generated = generate_password()
    obj = backend.create(resource, data)
    if generated and _out(args) == "json":
        obj["password"] = generated
    _one(args, resource, obj)
    if generated and _out(args) != "json":
        print(f"password  {generated}  (generated; shown once)")
    if resource == "keypair" and _out(args) != "json":
        print("(the secret key is shown only now: store it safely)", file=sys.stderr)


def cmd_list(backend, args):
    filters = {f: getattr(args, f, None) for f in REGISTRY[args.resource].filters}
    emit(backend.list(args.resource, **filters), columns(args.resource), _out(args))


def cmd_show(backend, args):
    _one(args, args.resource, backend.show(args.resource, _key(args)))


def cmd_update(backend, args):
    res = REGISTRY[args.resource]
    data = _data(args, (*res.key, "password_stdin"))
    if "new_name" in data:
        data[res.rename] = data.pop("new_name")
    if getattr(args, "password_stdin", False):
        data["password"] = _read_password()
    _one(args, args.resource, backend.update(args.resource, _key(args), data))


def cmd_delete(backend, args):
    backend.delete(args.resource, _key(args))
    print(f"deleted {args.resource} {'/'.join(map(str, _key(args)))}")


def _fixture(db, args, run, columns):
    data = fixtures.load(args.file)
    box = db.secrets
    actor = audit.local_actor("fixtures")
    try:
        with db.session() as s:
            emit(run(s, box, data, actor), columns, _out(args))
    except Exception as e:
        if args.verb != "list":  # the objects' rows rolled back with them: the failure is recorded
            audit.record(db, actor, audit.Event("fixture", args.verb, f"fixture {args.verb}",
                                                entity_id=str(args.file)).failed(e))
        raise


def cmd_fixture_populate(db, args):
    _fixture(db, args, fixtures.populate, ("kind", "name", "action"))


def cmd_fixture_list(db, args):
    _fixture(db, args, lambda s, _box, data, _actor: fixtures.status(s, data), ("kind", "name", "present"))


def cmd_fixture_reset(db, args):
    _fixture(db, args, fixtures.reset, ("kind", "name", "action"))


def cmd_agent_show(db, args):
    with db.session(readonly=True) as s:
        info = Inventory(Accelerators.instance()).agent(live_holders(s))
    if _out(args) == "json":
        print(json.dumps(info, indent=2, default=str))
    else:
        print(render_table(info), end="")


# -- the audit log ---------------------------------------------------------------------------------

AUDIT_COLUMNS = ("seq", "created_at", "actor", "source", "entity_type", "entity_id", "operation", "status",
                 "description")


def _audit_filters(args) -> dict:
    got = {k: getattr(args, k, None) for k in ("actor", "entity_type", "entity_id", "operation", "status",
                                               "since", "until", "text")}
    if got["status"] is not None:
        got["status"] = V.member(AuditStatus)(got["status"], "--status")
    for k in ("since", "until"):
        if got[k] is not None:
            got[k] = V.timestamp(got[k], f"--{k}")
    return got


def cmd_audit_list(backend, args):
    limit, offset = getattr(args, "limit", 50), getattr(args, "offset", 0)
    if not 1 <= limit <= 1000 or offset < 0:
        raise UsageError("--limit must be 1 to 1000 and --offset 0 or more")
    page = backend.audit_page(_audit_filters(args), limit, offset)
    emit(page["items"], AUDIT_COLUMNS, _out(args))
    if _out(args) != "json" and page["total"] > page["offset"] + len(page["items"]):
        print(f"({page['total']} rows; showing {len(page['items'])} from offset {page['offset']}: "
              "--offset/--limit for more)", file=sys.stderr)


def cmd_audit_show(backend, args):
    emit(backend.audit_show(args.id), (), _out(args), single=True)


def cmd_audit_export(backend, args):
    """Every matching row, oldest first, as JSON lines (to --out or stdout)."""
    filters = _audit_filters(args)
    try:
        out = open(args.out, "w", encoding="utf-8") if getattr(args, "out", None) else sys.stdout
    except OSError as e:
        raise UsageError(f"--out {args.out}: {e.strerror}") from None
    try:
        pages, offset, total = [], 0, None
        while total is None or offset < total:  # the API pages newest first: collect, then reverse
            page = backend.audit_page(filters, 1000, offset)
            total = page["total"]
            if not page["items"]:
                break
            pages.append(page["items"])
            offset += len(page["items"])
        for items in reversed(pages):
            for row in reversed(items):
                out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()


def cmd_audit_verify(db: Database, args):
    with db.session(readonly=True) as s:
        verdict = audit.verify(s)
        head = s.scalar(select(AuditLog.hash).order_by(AuditLog.seq.desc()).limit(1))
    result = {**verdict.to_dict(), "head_hash": head}
    if _out(args) == "json":
        print(json.dumps(result, indent=2))
    elif verdict.ok:
        print(f"audit log intact: {verdict.checked} row(s), seq {verdict.first_seq}..{verdict.last_seq}, "
              f"head {head}")
    else:
        print(f"audit log BROKEN at seq {verdict.broken_seq} (row id {verdict.broken_id}): {verdict.reason} "
              f"({verdict.checked} row(s) before it verified)")
    if not verdict.ok:
        raise AuditBroken


class AuditBroken(Exception):
    """``audit verify`` found a break: the command exits with status 1."""


def cmd_audit_prune(db: Database, args):
    before = V.timestamp(args.before, "--before")
    actor = audit.local_actor()
    try:
        out = open(args.export, "x", encoding="utf-8") if getattr(args, "export", None) else None
    except OSError as e:
        raise UsageError(f"--export {args.export}: {e.strerror} (it must be a new file)") from None
    try:
        with db.session() as s:
            gone = audit.prune(s, actor, before,
                               export=(lambda rows: out.writelines(audit.export_lines(rows))) if out else None)
    finally:
        if out is not None:
            out.close()
    print(f"deleted {gone} audit row(s) created before {before.isoformat()}"
          + (f" (exported to {args.export})" if out else ""))


# -- sessions --------------------------------------------------------------------------------------

SESSION_COLUMNS = ("id", "user", "name", "domain", "group", "image", "status", "accelerators", "created_at")
SESSION_FILTERS = ("user", "domain", "group", "status", "image", "accelerators", "older_than")


def cmd_session_list(backend, args):
    limit, offset = getattr(args, "limit", 100), getattr(args, "offset", 0)
    if not 1 <= limit <= 1000 or offset < 0:
        raise UsageError("--limit must be 1 to 1000 and --offset 0 or more")
    filters = {k: getattr(args, k, None) for k in SESSION_FILTERS}
    filters["status"] = filters["status"] or "live"
    if filters["accelerators"] is not None:
        filters["accelerators"] = "true" if filters["accelerators"] else "false"
    page = backend.session_page(filters, limit, offset)
    if _out(args) == "json":
        print(json.dumps(page, indent=2))
        return
    emit(page["items"], SESSION_COLUMNS, "table")
    if page["total"] > page["offset"] + len(page["items"]):
        print(f"({page['total']} sessions; showing {len(page['items'])} from offset {page['offset']}: "
              "--offset/--limit for more)", file=sys.stderr)


def cmd_session_show(backend, args):
    emit(backend.session_show(args.session), (), _out(args), single=True)


def cmd_session_stop(backend, args):
    got = backend.session_stop(args.session, getattr(args, "hub_api_url", None) or os.environ.get(
        "JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN"))
    if _out(args) == "json":
        print(json.dumps(got, indent=2))
    else:
        state = got["status"] if got["status"] == "terminated" else f"{got['status']} (the hub is stopping it)"
        print(f"session {got['id']} ({got['user']}/{got['name']}): {state}")


def cmd_session_ping(backend, args):
    got = backend.session_ping(args.session)
    if _out(args) == "json":
        print(json.dumps(got, indent=2))
    else:
        c, srv = got["container"], got["server"]
        print(f"session {got['id']} ({got['user']}/{got['name']}, {got['status']}): container "
              f"{(c['id'] or '-')[:12]} {c['state']}; server "
              + (f"answering (HTTP {srv['status']}, jupyter-server {srv['version']})" if srv["answering"]
                 else f"not answering ({srv['error'] or 'HTTP ' + str(srv['status'])})"))
    if not got["alive"]:
        raise SessionDead


class SessionDead(Exception):
    """``session ping`` found the container or its server down: the command exits with status 1."""


# -- the code-execution log ------------------------------------------------------------------------

CODE_LOG_COLUMNS = ("id", "started_at", "user", "session", "kind", "status", "execution_count", "code")


def _one_line(item: dict, width: int = 60) -> dict:
    code = " ".join((item.get("code") or "").split())
    return {**item, "code": code if len(code) <= width else code[:width - 1] + "…"}


def cmd_code_log_list(backend, args):
    filters = {f: getattr(args, f, None) for f in code_logs.FILTERS}
    filters = {k: v for k, v in filters.items() if v is not None}
    limit, offset = getattr(args, "limit", 100), getattr(args, "offset", 0)
    page = backend.code_logs(filters, limit, offset)
    items = page["items"] if _out(args) == "json" else [_one_line(i) for i in page["items"]]
    emit(items, CODE_LOG_COLUMNS, _out(args))


def cmd_code_log_show(backend, args):
    emit(backend.code_log(args.id), ("id", "user", "domain", "group", "server_name", "session", "kernel_id",
                                     "msg_id", "execution_count", "kind", "status", "started_at", "ended_at",
                                     "code_size", "code_sha256", "truncated", "captured_by", "received_at",
                                     "code"), _out(args), single=True)


def cmd_code_log_prune(db: Database, args):
    before = code_logs.parse_before(args.before)
    with db.session() as s:
        if getattr(args, "export", None):
            # written (and flushed to disk) before anything is deleted, in the same transaction's view
            with open(args.export, "a", encoding="utf-8") as f:
                for line in code_logs.export_older(s, before):
                    f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        n = code_logs.prune(s, before)
        audit.append(s, audit.local_actor(), audit.Event(
            "code-log", "prune", "code-log prune", description=f"{n} record(s) received before {before.isoformat()}"
            + (f", exported to {args.export}" if getattr(args, "export", None) else "")))
    print(f"deleted {n} code-log record(s) received before {before.isoformat()}"
          + (f" (exported to {args.export})" if getattr(args, "export", None) else ""))


LOCAL_ONLY = (cmd_db_upgrade, cmd_db_current, cmd_fixture_populate, cmd_fixture_list, cmd_fixture_reset,
              cmd_agent_show, cmd_audit_verify, cmd_audit_prune, cmd_code_log_prune)
