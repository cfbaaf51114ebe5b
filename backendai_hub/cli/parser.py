"""The CLI's command line: resources, verbs and their options (argparse)."""

from __future__ import annotations

import argparse
from typing import Callable

from .. import tenancy as T
from . import commands as C
from . import usage_commands

PROG = "backendai-hub"


def _allowed_policies_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allowed-policies", dest="allowed_resource_policies", metavar="KIND:NAME,...",
                   help="resource policies the domain's admins may assign, e.g. keypair:gold,user:students "
                        "('' for none; superadmins assign any)")


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
    g = p.add_mutually_exclusive_group()
    g.add_argument("--code-log", dest="code_log", action="store_const", const=True,
                   help="record the code its sessions run (code-log); a session logs when its domain or group does")
    g.add_argument("--no-code-log", dest="code_log", action="store_const", const=False)


def _policy_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slots", dest="total_resource_slots", metavar="SLOTS",
                   help="keypair: total resource slots, e.g. cpu=4,mem=16g")
    p.add_argument("--max-sessions", dest="max_concurrent_sessions", metavar="N",
                   help="keypair: max concurrent sessions ('none' for unlimited)")
    p.add_argument("--max-lifetime", dest="max_session_lifetime", metavar="SECONDS",
                   help="keypair: max session lifetime ('none' for unlimited)")
    p.add_argument("--idle-timeout", dest="idle_timeout", metavar="SECONDS",
                   help="keypair: idle timeout ('none' for unlimited)")
    p.add_argument("--idle-timeout-accelerator", dest="idle_timeout_accelerator", metavar="SECONDS",
                   help="keypair: idle timeout of sessions holding accelerators ('none': --idle-timeout applies)")
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
    _sub(db, "upgrade", "apply pending migrations (creates the database if needed)", C.cmd_db_upgrade)
    _sub(db, "current", "show the schema revision", C.cmd_db_current, read=True)

    # domain
    v = res.add_parser("domain", help="domains (tenants)").add_subparsers(dest="verb", required=True)
    p = _sub(v, "create", "create a domain", C.cmd_create, read=True)
    p.add_argument("name")
    _common_tenant_opts(p)
    _allowed_policies_opt(p)
    _sub(v, "list", "list domains", C.cmd_list, read=True)
    _sub(v, "show", "show a domain", C.cmd_show, read=True).add_argument("name")
    p = _sub(v, "update", "change a domain", C.cmd_update, read=True)
    p.add_argument("name")
    p.add_argument("--rename", dest="new_name", metavar="NAME")
    _common_tenant_opts(p)
    _allowed_policies_opt(p)
    _sub(v, "delete", "delete an empty domain", C.cmd_delete).add_argument("name")

    # group
    v = res.add_parser("group", help="groups (projects) within a domain").add_subparsers(dest="verb",
                                                                                        required=True)
    for verb, help, func in (("create", "create a group", C.cmd_create),
                             ("show", "show a group", C.cmd_show),
                             ("update", "change a group", C.cmd_update),
                             ("delete", "delete a group", C.cmd_delete)):
        p = _sub(v, verb, help, func, read=verb != "delete")
        p.add_argument("name")
        p.add_argument("-d", "--domain", default="default", help="domain (default: default)")
        if verb in ("create", "update"):
            _common_tenant_opts(p)
            p.add_argument("--policy", dest="resource_policy", help="group resource policy")
        if verb == "update":
            p.add_argument("--rename", dest="new_name", metavar="NAME")
    p = _sub(v, "list", "list groups", C.cmd_list, read=True)
    p.add_argument("-d", "--domain", help="only this domain")

    # user
    v = res.add_parser("user", help="users").add_subparsers(dest="verb", required=True)
    p = _sub(v, "create", "create a user (prints a generated password if none is given)",
             C.cmd_create, read=True)
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
    p = _sub(v, "list", "list users", C.cmd_list, read=True)
    p.add_argument("-d", "--domain")
    p.add_argument("-g", "--group", help="only members of this group (needs --domain)")
    _sub(v, "show", "show a user (by username or email)", C.cmd_show, read=True).add_argument(
        "username", metavar="user")
    p = _sub(v, "update", "change a user", C.cmd_update, read=True)
    p.add_argument("username", metavar="user")
    p.add_argument("--rename", dest="new_name", metavar="USERNAME")
    p.add_argument("--main-keypair", dest="main_access_key", metavar="ACCESS_KEY",
                   help="the keypair browser sessions are charged to (one of the user's)")
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
    _sub(v, "delete", "delete a user and their keypairs", C.cmd_delete).add_argument("username", metavar="user")

    # keypair
    v = res.add_parser("keypair", help="API keypairs").add_subparsers(dest="verb", required=True)
    for verb in ("issue", "create"):
        p = _sub(v, verb, "issue a keypair for a user; prints the secret key once", C.cmd_create,
                 read=True)
        p.add_argument("user")
        p.add_argument("--policy", dest="resource_policy", help="keypair resource policy (default: default)")
        p.add_argument("--inactive", dest="is_active", action="store_const", const=False)
    p = _sub(v, "list", "list keypairs (never their secrets)", C.cmd_list, read=True)
    p.add_argument("-u", "--user")
    _sub(v, "show", "show a keypair", C.cmd_show, read=True).add_argument("access_key")
    p = _sub(v, "update", "change a keypair", C.cmd_update, read=True)
    p.add_argument("access_key")
    p.add_argument("--policy", dest="resource_policy")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--active", dest="is_active", action="store_const", const=True)
    g.add_argument("--inactive", dest="is_active", action="store_const", const=False)
    _sub(v, "delete", "delete a keypair", C.cmd_delete).add_argument("access_key")

    # policy
    v = res.add_parser("policy", help="resource policies (keypair, user, group)").add_subparsers(
        dest="verb", required=True)
    for verb, help, func in (("create", "create a resource policy", C.cmd_create),
                             ("show", "show a resource policy", C.cmd_show),
                             ("update", "change a resource policy", C.cmd_update),
                             ("delete", "delete an unused resource policy", C.cmd_delete)):
        p = _sub(v, verb, help, func, read=verb != "delete")
        p.add_argument("name")
        p.add_argument("-k", "--kind", choices=tuple(T.policies.KINDS), default="keypair",
                       help="policy kind (default: keypair)")
        if verb in ("create", "update"):
            _policy_opts(p)
        if verb == "update":
            p.add_argument("--rename", dest="new_name", metavar="NAME")
    p = _sub(v, "list", "list resource policies", C.cmd_list, read=True)
    p.add_argument("-k", "--kind", choices=tuple(T.policies.KINDS))

    # fixture
    v = res.add_parser("fixture", help="load tenancy from a JSON or YAML file").add_subparsers(
        dest="verb", required=True)
    _sub(v, "populate", "create or update everything the file describes", C.cmd_fixture_populate,
         read=True).add_argument("file")
    _sub(v, "list", "show the file's objects and whether each exists", C.cmd_fixture_list,
         read=True).add_argument("file")
    _sub(v, "reset", "delete the file's objects and populate them afresh", C.cmd_fixture_reset,
         read=True).add_argument("file")

    # agent (this host's hardware inventory)
    v = res.add_parser("agent", help="this host's hardware and accelerators").add_subparsers(dest="verb",
                                                                                           required=True)
    _sub(v, "show", "CPU, memory, NUMA, disks, accelerators and which session holds each", C.cmd_agent_show,
         read=True)

    # audit log
    v = res.add_parser("audit", help="the audit log: who changed what").add_subparsers(dest="verb", required=True)
    for verb, help, func in (("list", "audit rows, newest first", C.cmd_audit_list),
                             ("export", "every matching row, oldest first, as JSON lines", C.cmd_audit_export)):
        p = _sub(v, verb, help, func, read=verb == "list")
        p.add_argument("--actor", help="who acted (a username)")
        p.add_argument("--entity-type", help="domain, group, user, keypair, policy, vfolder, session, ...")
        p.add_argument("--entity-id")
        p.add_argument("--operation", help="create, update, delete, share, sign-in, spawn, ...")
        p.add_argument("--status", choices=("success", "rejected", "error"))
        p.add_argument("--since", metavar="DATE", help="ISO 8601 date or date-time (UTC unless it says)")
        p.add_argument("--until", metavar="DATE")
        p.add_argument("--text", help="words in the description, action, entity or actor")
        if verb == "list":
            p.add_argument("--limit", type=int, default=50)
            p.add_argument("--offset", type=int, default=0)
        else:
            p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    _sub(v, "show", "one audit row", C.cmd_audit_show, read=True).add_argument("id", type=int)
    _sub(v, "verify", "check the hash chain; names the first broken row (exit 1)", C.cmd_audit_verify, read=True)
    p = _sub(v, "prune", "delete rows created before a date (the cut stays verifiable)", C.cmd_audit_prune)
    p.add_argument("--before", required=True, metavar="DATE")
    p.add_argument("--export", metavar="FILE", help="first write the deleted rows here as JSON lines (a new file)")

    # sessions (hub servers)
    v = res.add_parser("session", help="sessions (hub servers): list, show, stop, ping").add_subparsers(
        dest="verb", required=True)
    p = _sub(v, "list", "sessions, newest first (live ones unless --status says)", C.cmd_session_list, read=True)
    p.add_argument("-u", "--user")
    p.add_argument("-d", "--domain")
    p.add_argument("-g", "--group")
    p.add_argument("--status", metavar="STATUS[,...]",
                   help="queued, starting, running, terminated, live (default) or all")
    p.add_argument("--image")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--accelerators", dest="accelerators", action="store_const", const=True,
                   help="only sessions holding accelerator devices")
    g.add_argument("--no-accelerators", dest="accelerators", action="store_const", const=False,
                   help="only sessions holding none")
    p.add_argument("--older-than", dest="older_than", metavar="AGE|DATE",
                   help="created before: a duration back from now (30m, 2h, 7d) or an ISO 8601 date")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    for verb, help, func in (
            ("show", "one session (by id or UUID)", C.cmd_session_show),
            ("stop", "stop a session through the hub (on the database: needs --hub-api-url and "
                     "$JUPYTERHUB_API_TOKEN)", C.cmd_session_stop),
            ("ping", "is the container running and its server answering? (exit 1 if not)", C.cmd_session_ping)):
        p = _sub(v, verb, help, func, read=True)
        p.add_argument("session", metavar="ID", help="the session's id or UUID")
        if verb == "stop":
            p.add_argument("--hub-api-url", metavar="URL",
                           help="the hub's API, e.g. http://127.0.0.1:8081/hub/api (default: $JUPYTERHUB_API_URL); "
                                "only without BACKEND_ENDPOINT")

    # code-log
    v = res.add_parser("code-log", help="code run in sessions whose domain or group has code_log on").add_subparsers(
        dest="verb", required=True)
    p = _sub(v, "list", "recorded executions, oldest first", C.cmd_code_log_list, read=True)
    p.add_argument("-u", "--user")
    p.add_argument("-d", "--domain")
    p.add_argument("-g", "--group")
    p.add_argument("--session", metavar="ID", help="the session id")
    p.add_argument("--server", help="the hub server name ('' is the default server)")
    p.add_argument("--kind", choices=("cell", "terminal", "gap"))
    p.add_argument("--status", choices=("ok", "error", "aborted", "unknown"))
    p.add_argument("--since", metavar="TIME", help="ISO 8601, e.g. 2026-01-31 or 2026-01-31T12:00:00Z")
    p.add_argument("--until", metavar="TIME")
    p.add_argument("-q", "--search", dest="q", metavar="TEXT", help="only records whose code contains TEXT")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    _sub(v, "show", "one record, with its whole stored code", C.cmd_code_log_show, read=True).add_argument(
        "id", type=int)
    p = _sub(v, "prune", "delete records received before a time (database only)", C.cmd_code_log_prune)
    p.add_argument("--before", required=True, metavar="TIME", help="ISO 8601, e.g. 2026-01-01")
    p.add_argument("--export", metavar="FILE", help="append the records to FILE as JSON lines first")

    usage_commands.add_parser(res, _sub)

    # completion
    p = res.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=("bash", "zsh"))
    return parser
