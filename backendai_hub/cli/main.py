"""`backendai-hub` admin CLI: `backendai-hub <resource> <verb>` over our database or a running hub."""

from __future__ import annotations

import os
import sys
from typing import Sequence

import shtab
from sqlalchemy.exc import OperationalError, ProgrammingError

from ..db import Database, describe, unavailable_error
from ..errors import TenancyError
from ..keys import CryptKeyError, PasswordCostError
from . import commands as C
from .backends import LocalBackend, RemoteBackend
from .parser import PROG, build_parser


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resource == "completion":
        print(shtab.complete(parser, shell=args.shell))
        return 0
    remote = args.endpoint or (os.environ.get("BACKEND_ENDPOINT") if not args.db_url else None)
    try:
        if remote:
            if args.func in C.LOCAL_ONLY:
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
            if args.func is not C.cmd_db_upgrade and not db.has_tables():
                return _fail(f"the database {db.engine.url.render_as_string(hide_password=True)} has no "
                             f"backendai-hub schema: run `{PROG} db upgrade` first")
            args.func(db if args.func in C.LOCAL_ONLY else LocalBackend(db), args)
        finally:
            db.dispose()
    except (C.AuditBroken, C.SessionDead):
        return 1
    except TenancyError as e:
        return _fail(e.message)
    except (C.UsageError, CryptKeyError, PasswordCostError) as e:
        return _fail(str(e))
    except (OperationalError, ProgrammingError) as e:
        down = unavailable_error(e)
        if down is not None:
            return _fail(f"{down.message.rsplit(';', 1)[0]}: {describe(e)}")  # the operator sees where
        return _fail(f"database error: {str(e.orig).splitlines()[0] if e.orig else e}")
    return 0
