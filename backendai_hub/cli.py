"""`backendai-hub` admin CLI: `backendai-hub <resource> <verb>` over our database."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any, Callable, Sequence

from sqlalchemy.exc import OperationalError, ProgrammingError

from . import fixtures as F
from . import tenancy as T
from .admin import LocalBackend, RemoteBackend
from .db import Database, current_revision, head_revision
from .errors import TenancyError
from .keys import CryptKeyError, generate_password
from .policy import format_slots, slots_from_json
from .host_permissions import HOST_PERMISSIONS

PROG = "backendai-hub"


class UsageError(Exception):
    """Bad command-line input that argparse itself cannot see."""


# -- output ------------------------------------------------------------------------------------

def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "total_resource_slots":
        return format_slots(slots_from_json(value))
    if key == "allowed_vfolder_hosts" and isinstance(value, dict):
        return ",".join(h if len(p) == len(HOST_PERMISSIONS) else f"{h}({','.join(p)})"
                        for h, p in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def emit(rows: list[dict] | dict, columns: Sequence[str], output: str, *, single: bool = False) -> None:
    if output == "json":
        print(json.dumps(rows, indent=2, sort_keys=False))
        return
    if single:
        assert isinstance(rows, dict)
        width = max(map(len, rows))
        for k, v in rows.items():
            print(f"{k.ljust(width)}  {_cell(k, v)}")
        return
    assert isinstance(rows, list)
    table = [[c.upper() for c in columns]] + [[_cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


# -- resources ---------------------------------------------------------------------------------

def _common_tenant_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--description", help="free text")
    p.add_argument("--slots", dest="total_resource_slots", metavar="SLOTS",
                   help="total resource slots, e.g. cpu=8,mem=32g,cuda.device=2 ('' for unlimited)")
    p.add_argument("--allowed-images", metavar="IMG,...", help="images allowed (empty: any)")
    p.add_argument("--allowed-vfolder-hosts", metavar="HOST[:PERM+...],...",
                   help="storage hosts allowed; a host alone grants every permission, host:perm+perm only those "
                        "(create-vfolder, modify-vfolder, delete-vfolder, mount-in-session, upload-file, "
                        "download-file, invite-others, set-user-specific-permission)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--active", dest="is_active", action="store_const", const=True)
    g.add_argument("--inactive", dest="is_active", action="store_const", const=False)


def _policy_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slots", dest="total_resource_slots", metavar="SLOTS",
                   help="keypair: total resource slots, e.g. cpu=4,mem=16g")
    p.add_argument("--max-sessions", dest="max_concurrent_sessions", metavar="N",
                   help="keypair: max concurrent sessions ('none' for unlimited)")
    p.add_argument("--max-lifetime", dest="max_session_lifetime", metavar="SECONDS",
                   help="keypair: max session lifetime ('none' for unlimited)")
    p.add_argument("--idle-timeout", dest="idle_timeout", metavar="SECONDS",
                   help="keypair: idle timeout ('none' for unlimited)")
    p.add_argument("--allowed-vfolder-hosts", metavar="HOST[:PERM+...],...",
                   help="keypair: storage hosts allowed (see domain create --help for permissions)")
    p.add_argument("--egress", choices=("none", "allowlist", "open"), help="keypair: sessions' network egress")
    p.add_argument("--egress-allowlist", metavar="HOST:PORT,...",
                   help="keypair: TCP destinations allowed with --egress allowlist, e.g. 10.0.0.5:443")
    p.add_argument("--max-vfolder-count", dest="max_vfolder_count", metavar="N",
                   help="user/group: max vfolders ('none' for unlimited)")
    p.add_argument("--max-quota-size", dest="max_quota_size", metavar="SIZE",
                   help="user/group: max quota of one vfolder, e.g. 100g ('none' for unlimited)")
    p.add_argument("--max-quota-scope-size", dest="max_quota_scope_size", metavar="SIZE",
                   help="user/group: max total of the quotas of all its vfolders, e.g. 1t ('none' for unlimited)")


UNLIMITED_WORDS = ("none", "unlimited")
NULLABLE = ("max_concurrent_sessions", "max_session_lifetime", "idle_timeout", "max_vfolder_count",
            "max_quota_size", "max_quota_scope_size")


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


COLUMNS = {
    "domain": ("name", "is_active", "total_resource_slots", "allowed_images", "description"),
    "group": ("domain", "name", "is_active", "total_resource_slots", "resource_policy", "members"),
    "user": ("username", "email", "role", "status", "domain", "groups"),
    "keypair": ("access_key", "user", "is_active", "resource_policy", "created_at"),
    "policy": ("kind", "name", "total_resource_slots", "max_concurrent_sessions", "max_session_lifetime",
               "idle_timeout", "max_vfolder_count", "max_quota_size", "max_quota_scope_size"),
    "fixture": ("kind", "name", "action", "present"),
}


def _sub(verbs, name: str, help: str, func: Callable, *, read: bool = False) -> argparse.ArgumentParser:
    p = verbs.add_parser(name, help=help, description=help, argument_default=argparse.SUPPRESS)
    if read:
        p.add_argument("-o", "--output", choices=("table", "json"), default=argparse.SUPPRESS,
                       help="output format (default: table)")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Administer backendai-hub tenancy: domains, groups, users, keypairs, "
                               "resource policies.")
    parser.add_argument("--db-url", default=None,
                        help="database URL (default: $BACKENDAI_HUB_DB_URL or sqlite:///backendai_hub.sqlite)")
    parser.add_argument("--endpoint", default=None,
                        help="a running hub's service URL (default: $BACKEND_ENDPOINT), e.g. "
                             "http://127.0.0.1:8000/services/backendai; requests are signed with "
                             "$BACKEND_ACCESS_KEY / $BACKEND_SECRET_KEY")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table",
                        help="output format of reads (default: table)")
    res = parser.add_subparsers(dest="resource", metavar="RESOURCE", required=True)

    # db
    db = res.add_parser("db", help="database schema").add_subparsers(dest="verb", required=True)
    _sub(db, "upgrade", "apply pending migrations (creates the database if needed)", cmd_db_upgrade)
    _sub(db, "current", "show the schema revision", cmd_db_current, read=True)

    # domain
    v = res.add_parser("domain", help="domains (tenants)").add_subparsers(dest="verb", required=True)
    p = _sub(v, "create", "create a domain", cmd_create, read=True)
    p.add_argument("name")
    _common_tenant_opts(p)
    _sub(v, "list", "list domains", cmd_list, read=True)
    _sub(v, "show", "show a domain", cmd_show, read=True).add_argument("name")
    p = _sub(v, "update", "change a domain", cmd_update, read=True)
    p.add_argument("name")
    p.add_argument("--rename", dest="new_name", metavar="NAME")
    _common_tenant_opts(p)
    _sub(v, "delete", "delete an empty domain", cmd_delete).add_argument("name")

    # group
    v = res.add_parser("group", help="groups (projects) within a domain").add_subparsers(dest="verb",
                                                                                        required=True)
    for verb, help, func in (("create", "create a group", cmd_create),
                             ("show", "show a group", cmd_show),
                             ("update", "change a group", cmd_update),
                             ("delete", "delete a group", cmd_delete)):
        p = _sub(v, verb, help, func, read=verb != "delete")
        p.add_argument("name")
        p.add_argument("-d", "--domain", default="default", help="domain (default: default)")
        if verb in ("create", "update"):
            _common_tenant_opts(p)
            p.add_argument("--policy", dest="resource_policy", help="group resource policy")
        if verb == "update":
            p.add_argument("--rename", dest="new_name", metavar="NAME")
    p = _sub(v, "list", "list groups", cmd_list, read=True)
    p.add_argument("-d", "--domain", help="only this domain")

    # user
    v = res.add_parser("user", help="users").add_subparsers(dest="verb", required=True)
    p = _sub(v, "create", "create a user (prints a generated password if none is given)",
             cmd_create, read=True)
    p.add_argument("username")
    p.add_argument("--email", required=True)
    p.add_argument("-d", "--domain", default="default")
    p.add_argument("--role", choices=("superadmin", "domain-admin", "user"))
    p.add_argument("--full-name")
    p.add_argument("--groups", metavar="GROUP,...", help="groups in the user's domain")
    p.add_argument("--policy", dest="resource_policy", help="user resource policy")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password", help="password (visible in ps; prefer --password-stdin)")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    pw.add_argument("--no-password", action="store_true", help="keypair-only user, no browser sign-in")
    p = _sub(v, "list", "list users", cmd_list, read=True)
    p.add_argument("-d", "--domain")
    p.add_argument("-g", "--group", help="only members of this group (needs --domain)")
    _sub(v, "show", "show a user (by username or email)", cmd_show, read=True).add_argument("user")
    p = _sub(v, "update", "change a user", cmd_update, read=True)
    p.add_argument("user")
    p.add_argument("--rename", dest="username", metavar="USERNAME")
    p.add_argument("--email")
    p.add_argument("-d", "--domain", help="move to another domain (drops its groups there)")
    p.add_argument("--role", choices=("superadmin", "domain-admin", "user"))
    p.add_argument("--status", choices=("active", "inactive"))
    p.add_argument("--full-name")
    p.add_argument("--groups", metavar="GROUP,...", help="replace the user's groups")
    p.add_argument("--add-groups", metavar="GROUP,...")
    p.add_argument("--remove-groups", metavar="GROUP,...")
    p.add_argument("--policy", dest="resource_policy")
    p.add_argument("--password-stdin", action="store_true", help="set a new password read from stdin")
    _sub(v, "delete", "delete a user and their keypairs", cmd_delete).add_argument("user")

    # keypair
    v = res.add_parser("keypair", help="API keypairs").add_subparsers(dest="verb", required=True)
    for verb in ("issue", "create"):
        p = _sub(v, verb, "issue a keypair for a user; prints the secret key once", cmd_create,
                 read=True)
        p.add_argument("user")
        p.add_argument("--policy", dest="resource_policy", help="keypair resource policy (default: default)")
        p.add_argument("--inactive", dest="is_active", action="store_const", const=False)
    p = _sub(v, "list", "list keypairs (never their secrets)", cmd_list, read=True)
    p.add_argument("-u", "--user")
    _sub(v, "show", "show a keypair", cmd_show, read=True).add_argument("access_key")
    p = _sub(v, "update", "change a keypair", cmd_update, read=True)
    p.add_argument("access_key")
    p.add_argument("--policy", dest="resource_policy")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--active", dest="is_active", action="store_const", const=True)
    g.add_argument("--inactive", dest="is_active", action="store_const", const=False)
    _sub(v, "delete", "delete a keypair", cmd_delete).add_argument("access_key")

    # policy
    v = res.add_parser("policy", help="resource policies (keypair, user, group)").add_subparsers(
        dest="verb", required=True)
    for verb, help, func in (("create", "create a resource policy", cmd_create),
                             ("show", "show a resource policy", cmd_show),
                             ("update", "change a resource policy", cmd_update),
                             ("delete", "delete an unused resource policy", cmd_delete)):
        p = _sub(v, verb, help, func, read=verb != "delete")
        p.add_argument("name")
        p.add_argument("-k", "--kind", choices=tuple(T.policies.KINDS), default="keypair",
                       help="policy kind (default: keypair)")
        if verb in ("create", "update"):
            _policy_opts(p)
        if verb == "update":
            p.add_argument("--rename", dest="new_name", metavar="NAME")
    p = _sub(v, "list", "list resource policies", cmd_list, read=True)
    p.add_argument("-k", "--kind", choices=tuple(T.policies.KINDS))

    # fixture
    v = res.add_parser("fixture", help="load tenancy from a JSON or YAML file").add_subparsers(
        dest="verb", required=True)
    _sub(v, "populate", "create or update everything the file describes", cmd_fixture_populate,
         read=True).add_argument("file")
    _sub(v, "list", "show the file's objects and whether each exists", cmd_fixture_list,
         read=True).add_argument("file")
    _sub(v, "reset", "delete the file's objects and populate them afresh", cmd_fixture_reset,
         read=True).add_argument("file")

    # agent (this host's hardware inventory)
    v = res.add_parser("agent", help="this host's hardware and accelerators").add_subparsers(dest="verb",
                                                                                           required=True)
    _sub(v, "show", "CPU, memory, NUMA, disks, accelerators and which session holds each", cmd_agent_show,
         read=True)

    # completion
    p = res.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=("bash", "zsh"))
    p.set_defaults(func=cmd_completion)
    return parser


# -- commands ----------------------------------------------------------------------------------

def _out(args) -> str:
    return getattr(args, "output", "table")


def _one(args, kind: str, obj: dict) -> None:
    emit(obj, COLUMNS[kind], _out(args), single=True)


def cmd_db_upgrade(db: Database, args) -> None:
    db.upgrade()
    print(f"database at revision {current_revision(db.engine)}")


def cmd_db_current(db: Database, args) -> None:
    rev = current_revision(db.engine)
    emit({"current": rev, "head": head_revision()}, (), _out(args), single=True)


# how each resource's command line names one object, and which options are not data
KEY_ARGS = {"domain": ("name",), "group": ("domain", "name"), "user": ("user",), "keypair": ("access_key",),
            "policy": ("kind", "name")}
LIST_FILTERS = {"domain": (), "group": ("domain",), "user": ("domain", "group"), "keypair": ("user",),
                "policy": ("kind",)}


def _key(args) -> tuple:
    return tuple(getattr(args, a) for a in KEY_ARGS[args.resource])


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
    filters = {f: getattr(args, f, None) for f in LIST_FILTERS[args.resource]}
    emit(backend.list(args.resource, **filters), COLUMNS[args.resource], _out(args))


def cmd_show(backend, args):
    _one(args, args.resource, backend.show(args.resource, _key(args)))


def cmd_update(backend, args):
    data = _data(args, (*KEY_ARGS[args.resource], "password_stdin"))
    if "new_name" in data:
        data["name"] = data.pop("new_name")
    if getattr(args, "password_stdin", False):
        data["password"] = _read_password()
    _one(args, args.resource, backend.update(args.resource, _key(args), data))


def cmd_delete(backend, args):
    backend.delete(args.resource, _key(args))
    print(f"deleted {args.resource} {'/'.join(map(str, _key(args)))}")


def _fixture(db, args, run, columns):
    data = F.load(args.file)
    box = db.secrets
    with db.session() as s:
        emit(run(s, box, data), columns, _out(args))


def cmd_fixture_populate(db, args):
    _fixture(db, args, F.populate, ("kind", "name", "action"))


def cmd_fixture_list(db, args):
    _fixture(db, args, lambda s, _box, data: F.status(s, data), ("kind", "name", "present"))


def cmd_fixture_reset(db, args):
    _fixture(db, args, F.reset, ("kind", "name", "action"))


def cmd_agent_show(db, args):
    from .accelerators import Accelerators
    from .accelerators.inventory import Inventory, live_holders, render_table

    with db.session(readonly=True) as s:
        info = Inventory(Accelerators.instance()).agent(live_holders(s))
    if _out(args) == "json":
        print(json.dumps(info, indent=2, default=str))
    else:
        print(render_table(info), end="")


def cmd_completion(db, args):
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))


LOCAL_ONLY = (cmd_db_upgrade, cmd_db_current, cmd_fixture_populate, cmd_fixture_list, cmd_fixture_reset,
              cmd_agent_show)


# -- entry point -------------------------------------------------------------------------------

def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is cmd_completion:
        args.func(None, args)
        return 0
    remote = args.endpoint or (os.environ.get("BACKEND_ENDPOINT") if not args.db_url else None)
    try:
        if remote:
            if args.func in LOCAL_ONLY:
                return _fail(f"'{args.resource} {args.verb}' works on the database only: "
                             "pass --db-url (or unset BACKEND_ENDPOINT)")
            backend = RemoteBackend.from_env(remote)
            try:
                args.func(backend, args)
            finally:
                backend.close()
            return 0
        db = Database(url=args.db_url) if args.db_url else Database()
        try:
            if args.func is not cmd_db_upgrade and not db.has_tables():
                return _fail(f"the database {db.engine.url.render_as_string(hide_password=True)} has no "
                             f"backendai-hub schema: run `{PROG} db upgrade` first")
            args.func(db if args.func in LOCAL_ONLY else LocalBackend(db), args)
        finally:
            db.dispose()
    except TenancyError as e:
        return _fail(e.message)
    except (UsageError, CryptKeyError) as e:
        return _fail(str(e))
    except (OperationalError, ProgrammingError) as e:
        return _fail(f"database error: {str(e.orig).splitlines()[0] if e.orig else e}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
