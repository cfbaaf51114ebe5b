"""Which database errors mean "unavailable, retry later" (a 503 with Retry-After) and which are the request's own."""

import sqlite3

import psycopg
import psycopg.errors as PE
import pytest
from sqlalchemy import exc as sa_exc

from backendai_hub.db import is_unavailable, unavailable_error
from backendai_hub.errors import ServiceUnavailable


def wrapped(orig, cls=sa_exc.OperationalError, invalidated=False):
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


REFUSED = psycopg.OperationalError('connection failed: connection to server at "10.0.0.5", port 5432 failed: '
                                   'Connection refused\n\tIs the server running on that host?')

CASES = [
    # (error, unavailable, the reason a client reads)
    (wrapped(REFUSED), True, "it cannot be reached"),
    (REFUSED, True, "it cannot be reached"),
    (wrapped(psycopg.OperationalError('connection failed: ... failed: FATAL:  the database system is starting up')),
     True, "the server is restarting"),
    (wrapped(PE.AdminShutdown("terminating connection due to administrator command")), True,
     "the server is restarting"),
    (wrapped(PE.CrashShutdown("crash")), True, "the server is restarting"),
    (wrapped(PE.TooManyConnections("sorry, too many clients already")), True, "the server has no connection left"),
    (wrapped(psycopg.OperationalError('connection failed: FATAL:  too many connections for role "hub"')), True,
     "the server has no connection left"),
    (wrapped(psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
             invalidated=True), True, "it cannot be reached"),
    (wrapped(psycopg.InterfaceError("the connection is closed"), cls=sa_exc.InterfaceError), True,
     "it cannot be reached"),
    (wrapped(PE.ConnectionFailure("connection failure")), True, "it cannot be reached"),
    (sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), True,
     "all of this process's connections to it are in use"),
    # the request's own errors stay what they are
    (wrapped(PE.DeadlockDetected("deadlock detected")), False, None),
    (wrapped(PE.SerializationFailure("could not serialize access")), False, None),
    (wrapped(PE.UniqueViolation("duplicate key"), cls=sa_exc.IntegrityError), False, None),
    (wrapped(PE.QueryCanceled("canceling statement due to statement timeout")), False, None),
    # a SQLite file locked past the busy timeout: busy, retry (writes begin IMMEDIATE, so never a deadlock)
    (wrapped(sqlite3.OperationalError("database is locked")), True, "it is busy with other writers"),
    (sqlite3.OperationalError("database is locked"), True, "it is busy with other writers"),
    (wrapped(sqlite3.OperationalError("attempt to write a readonly database")), False, None),
    (wrapped(sqlite3.DatabaseError("database disk image is malformed"), cls=sa_exc.DatabaseError), False, None),
    (ValueError("not a database error"), False, None),
]


@pytest.mark.parametrize(("error", "expected", "why"), CASES, ids=lambda v: type(v).__name__)
def test_unavailable_errors_are_recognised_and_named(error, expected, why):
    assert is_unavailable(error) is expected
    e = unavailable_error(error, retry_after=7)
    if not expected:
        assert e is None
        return
    assert isinstance(e, ServiceUnavailable) and e.status == 503
    assert e.message == f"the database is unavailable ({why}); retry in 7 s"
    assert e.headers == {"Retry-After": "7"}
    assert e.to_json() == {"error": "ServiceUnavailable", "message": e.message, "unavailable": "database",
                           "retry_after": 7}
    assert "10.0.0.5" not in e.message  # the server's address stays in the log
