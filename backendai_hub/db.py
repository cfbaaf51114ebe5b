"""Our own database: engine setup (SQLite WAL or PostgreSQL), sessions, Alembic migrations."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import SingletonConfigurable

from .errors import Conflict, ServiceUnavailable
from .keys import PasswordCost, SecretBox, load_or_create_key_file, parse_keys, set_password_cost

DEFAULT_DB_URL = "sqlite:///backendai_hub.sqlite"
# our own version table, so a database shared with the hub's never mixes histories
VERSION_TABLE = "backendai_hub_alembic_version"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` / ``postgres://`` URLs and use the psycopg (3) driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def instance_id(url: str) -> str:
    """The deployment's id: a hash of its database's URL without the password (hub and service agree)."""
    u = make_url(normalize_url(url)).set(password=None)
    return hashlib.sha256(u.render_as_string(hide_password=False).encode()).hexdigest()[:16]


def make_engine(url: str, *, busy_timeout_ms: int = 10000, echo: bool = False, pool_size: int = 5,
                max_overflow: int = 10, pool_timeout: float = 10.0, connect_timeout: float = 5.0) -> Engine:
    """The engine of ``url``. PostgreSQL's pool is bounded (``pool_size`` + ``max_overflow`` connections,
    a checkout waits ``pool_timeout`` s at most) and pings a connection before lending it, so one that a
    server restart closed is replaced instead of failing a request."""
    url = normalize_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # let SQLAlchemy, not pysqlite, own transactions, so BEGIN IMMEDIATE works
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if u.database and u.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            if conn.get_execution_options().get("readonly"):
                conn.exec_driver_sql("BEGIN")  # readers never wait for the write lock (WAL)
            else:
                # take the write lock up front: read-then-write transactions never deadlock-upgrade
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = {"connect_timeout": max(1, round(connect_timeout))} if u.get_backend_name() == "postgresql" else {}
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow,
                         pool_timeout=pool_timeout, connect_args=connect_args)


# SQLSTATEs that mean "the server cannot serve us now", not "this statement is wrong": connection
# exceptions (class 08), too many connections, and a server shutting down, crashed or starting up
_UNAVAILABLE_STATES = ("53300", "57P01", "57P02", "57P03")


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database server cannot be reached (refused, lost, shutting down, full of
    connections) or every pooled connection is busy: the same request may succeed later.

    A SQLite file still locked by other writers after the busy timeout is unavailable too (every write
    begins IMMEDIATE, so "locked" only ever means "busy for longer than we wait", never a deadlock).
    SQLite's other errors (a malformed file, a read-only one) and PostgreSQL's statement errors
    (deadlocks, serialization failures, constraint violations) are not: they are the request's own.
    """
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection free for pool_timeout s
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return _sqlite_busy(exc)
    if exc is None or type(exc).__module__.split(".")[0] != "psycopg":
        return False
    if not any(c.__name__ in ("OperationalError", "InterfaceError") for c in type(exc).__mro__):
        return False
    state = getattr(exc, "sqlstate", None)
    # no SQLSTATE: psycopg's own connection errors (refused, timed out, closed, lost mid-query)
    return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES


def _sqlite_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "database table is locked" in text


_RESTARTING = ("the database system is starting up", "the database system is shutting down",
               "the database system is in recovery mode", "terminating connection due to administrator command")
_FULL = ("too many connections", "remaining connection slots are reserved")


def unavailable_error(exc: BaseException, retry_after: int = 5) -> ServiceUnavailable | None:
    """The 503 that ``exc`` means for a caller, when :func:`is_unavailable`; else None. Its message says
    what happened in general terms (the server's address and its own words go to the log only)."""
    if not is_unavailable(exc):
        return None
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None) or ""
    text = str(orig).lower()  # a refused connection carries the server's FATAL line, not its SQLSTATE
    if isinstance(exc, sa_exc.TimeoutError):
        why = "all of this process's connections to it are in use"
    elif isinstance(orig, sqlite3.OperationalError):
        why = "it is busy with other writers"
    elif state in ("57P01", "57P02", "57P03") or any(w in text for w in _RESTARTING):
        why = "the server is restarting"
    elif state == "53300" or any(w in text for w in _FULL):
        why = "the server has no connection left"
    else:
        why = "it cannot be reached"
    return ServiceUnavailable(f"the database is unavailable ({why}); retry in {retry_after} s",
                              retry_after=retry_after)


_writer_locks: dict[str, threading.RLock] = {}
_writer_locks_guard = threading.Lock()


def sqlite_writer_lock(url: str) -> threading.RLock | None:
    """The lock this process's writers of the SQLite file at ``url`` take in turn (None: not a SQLite file).

    SQLite has one write lock per file, and a writer that finds it taken polls for it with sleeps of up
    to 100 ms: with many threads polling, whoever polls at the right moment wins and an unlucky one can
    lose for longer than the busy timeout ("database is locked"). Queued on this lock, one thread per
    process asks SQLite and the others are woken the moment it is done, in turn; the processes (hub,
    service, a CLI) still poll for the file's lock among themselves, one each.
    """
    u = make_url(normalize_url(url))
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    key = os.path.realpath(u.database)
    with _writer_locks_guard:
        return _writer_locks.setdefault(key, threading.RLock())


def describe(exc: BaseException) -> str:
    """The first line of a database error, for the log."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def alembic_config(engine_or_url: Engine | str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "backendai_hub:alembic")
    if isinstance(engine_or_url, str):
        cfg.set_main_option("sqlalchemy.url", normalize_url(engine_or_url).replace("%", "%%"))
    else:
        cfg.attributes["engine"] = engine_or_url
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class Database(SingletonConfigurable):
    """Connection to backendai-hub's own database, shared by the authenticator, spawner and service."""

    url = Unicode(
        help="""SQLAlchemy URL of backendai-hub's database (never the hub's own).

        SQLite (default, a file in the hub's working directory, WAL mode) or PostgreSQL
        (``postgresql://user:pass@host/db``). Defaults to ``$BACKENDAI_HUB_DB_URL``.
        """,
    ).tag(config=True)

    @default("url")
    def _default_url(self):
        return os.environ.get("BACKENDAI_HUB_DB_URL", DEFAULT_DB_URL)

    crypt_key_file = Unicode(
        help="""File holding the Fernet key(s) that encrypt keypair secret keys at rest.

        Created with a fresh key (mode 0600) when missing. Ignored when ``$BACKENDAI_HUB_CRYPT_KEY``
        is set (keys separated by ``;``, newest first, for rotation). Defaults to
        ``$BACKENDAI_HUB_CRYPT_KEY_FILE`` or ``backendai_hub.key`` beside a SQLite database.
        """,
    ).tag(config=True)

    @default("crypt_key_file")
    def _default_key_file(self):
        if os.environ.get("BACKENDAI_HUB_CRYPT_KEY_FILE"):
            return os.environ["BACKENDAI_HUB_CRYPT_KEY_FILE"]
        u = make_url(normalize_url(self.url))
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            return str(Path(u.database).with_name("backendai_hub.key"))
        return "backendai_hub.key"

    auto_upgrade = Bool(
        True, help="Apply pending Alembic migrations when the hub starts (``backendai-hub db upgrade`` otherwise).",
    ).tag(config=True)

    busy_timeout_ms = Integer(10000, help="SQLite busy timeout in milliseconds.").tag(config=True)

    pool_size = Integer(
        5, min=1, help="""PostgreSQL: connections each process (the hub, the REST service, a CLI) keeps open.

        A process never holds more than ``pool_size + max_overflow``: size them so that every process
        together stays below the server's ``max_connections``.
        """,
    ).tag(config=True)

    max_overflow = Integer(
        10, min=0, help="PostgreSQL: connections opened beyond ``pool_size`` under load and closed when returned.",
    ).tag(config=True)

    pool_timeout = Float(
        10, min=0, help="""PostgreSQL: seconds a request waits for a free connection when all are in use.

        It then fails with 503 Service Unavailable (``Retry-After``) instead of queueing without end.
        """,
    ).tag(config=True)

    connect_timeout = Float(
        5, min=1, help="""PostgreSQL: seconds to wait for the server when opening a connection (whole seconds).

        While the server is down or restarting, requests fail fast with 503 Service Unavailable
        (a JSON error naming the database, with ``Retry-After``; a spawn fails with that message) and
        nothing is changed; the pool reconnects by itself once the server is back (connections are
        pinged before use, so none closed by the restart is lent out).
        """,
    ).tag(config=True)

    retry_after = Integer(
        5, min=1, help="Seconds the REST service's ``Retry-After`` tells clients to wait when the database is unavailable.",
    ).tag(config=True)

    password_time_cost = Integer(
        PasswordCost.time_cost, help="""Passes of argon2id over its memory for each password hash (see
        ``password_memory_kib``).""",
    ).tag(config=True)

    password_memory_kib = Integer(
        PasswordCost.memory_kib, help="""Memory (KiB) of each argon2id password hash.

        The default (64 MiB, 3 passes, 4 threads) costs about 0.15 CPU-seconds a sign-in; 19456 KiB with
        2 passes and 1 thread costs 0.017. On a small hub where many people sign in at once, hashing
        takes most of its CPU (the 200-user load test on 2 cores). Lower it down to OWASP's minimum for
        argon2id (19456 KiB with 2 passes, or 12288 with 3, 9216 with 4, 7168 with 5, 47104 with 1;
        anything below is refused at start, and so is more than 4 GiB); raise it where sign-ins are few.
        The hub passes these settings to the REST service, and a password stored at another cost is
        hashed anew at its owner's next sign-in. The CLI working on the database does not
        read the hub's configuration: it reads ``$BACKENDAI_HUB_PASSWORD_COST`` (``m=19456,t=2,p=1``),
        which is also these settings' default, so set that variable for the hub and the CLI alike (the
        hub warns at start when the two differ).""",
    ).tag(config=True)

    password_parallelism = Integer(
        PasswordCost.parallelism, help="Threads (lanes) of each argon2id password hash, 1 to 64.",
    ).tag(config=True)

    @default("password_time_cost")
    def _default_time_cost(self):
        return self._env_cost().time_cost

    @default("password_memory_kib")
    def _default_memory_kib(self):
        return self._env_cost().memory_kib

    @default("password_parallelism")
    def _default_parallelism(self):
        return self._env_cost().parallelism

    @staticmethod
    def _env_cost() -> PasswordCost:
        """``$BACKENDAI_HUB_PASSWORD_COST`` (``m=19456,t=2,p=1``): the defaults of the three settings, for
        processes without the hub's configuration (the CLI on the database)."""
        return PasswordCost.parse(os.environ.get("BACKENDAI_HUB_PASSWORD_COST", ""))

    _engine: Engine | None = None
    _sessionmaker: sessionmaker | None = None
    _readonly_sessionmaker: sessionmaker | None = None
    _box: SecretBox | None = None
    _down_since: float | None = None  # when the database became unavailable (for the log)
    _writer_lock_url: str | None = None
    _writer_lock_value: threading.RLock | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        cost = PasswordCost(self.password_time_cost, self.password_memory_kib, self.password_parallelism)
        set_password_cost(cost)
        if os.environ.get("BACKENDAI_HUB_PASSWORD_COST") and self._env_cost() != cost:
            self.log.warning("Database.password_* (m=%s,t=%s,p=%s) differ from $BACKENDAI_HUB_PASSWORD_COST: the "
                             "CLI working on the database hashes the passwords it sets at the variable's cost",
                             cost.memory_kib, cost.time_cost, cost.parallelism)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url, busy_timeout_ms=self.busy_timeout_ms, pool_size=self.pool_size,
                                       max_overflow=self.max_overflow, pool_timeout=self.pool_timeout,
                                       connect_timeout=self.connect_timeout)
        return self._engine

    @property
    def secrets(self) -> SecretBox:
        if self._box is None:
            env = os.environ.get("BACKENDAI_HUB_CRYPT_KEY", "")
            keys = parse_keys(env) if env.strip() else load_or_create_key_file(self.crypt_key_file)
            self._box = SecretBox(keys)
        return self._box

    def upgrade(self) -> None:
        upgrade(self.engine)

    def ensure_schema(self) -> None:
        """Upgrade when allowed; otherwise refuse to run against an outdated schema."""
        if self.auto_upgrade:
            self.upgrade()
            return
        current = current_revision(self.engine)
        if current != head_revision():
            raise RuntimeError(f"backendai-hub database is at revision {current}, code expects "
                               f"{head_revision()}: run `backendai-hub db upgrade`")

    @contextmanager
    def session(self, readonly: bool = False) -> Iterator[Session]:
        """One transaction: committed when the block succeeds, rolled back on any error.

        ``readonly`` transactions must not write; on SQLite they skip the write lock. A database that
        cannot be reached (see :func:`is_unavailable`) raises :class:`~backendai_hub.errors.ServiceUnavailable`:
        the transaction is rolled back whole, or was never begun (all of it, or none, is committed).
        """
        if self._sessionmaker is None:
            self._sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
            self._readonly_sessionmaker = sessionmaker(self.engine.execution_options(readonly=True),
                                                       expire_on_commit=False)
        lock = None if readonly else self._writer_lock
        if lock is not None and not lock.acquire(timeout=self.busy_timeout_ms / 1000):
            self._unavailable("this process's other writers held it for the whole busy timeout")
            raise ServiceUnavailable(f"the database is unavailable (it is busy with other writers); retry in "
                                     f"{self.retry_after} s", retry_after=self.retry_after)
        s = (self._readonly_sessionmaker if readonly else self._sessionmaker)()
        try:
            with s.begin():
                yield s
        except Exception as e:
            error = unavailable_error(e, self.retry_after)
            if error is None:
                raise
            self._unavailable(describe(e))
            raise error from e
        finally:
            s.close()
            if lock is not None:
                lock.release()
        if self._down_since is not None:
            down, self._down_since = time.monotonic() - self._down_since, None
            self.log.info("backendai-hub database reachable again (unavailable for %.1f s)", down)

    def _unavailable(self, why: str) -> None:
        if self._down_since is None:  # once per outage, not once per request
            self._down_since = time.monotonic()
            self.log.warning("backendai-hub database unavailable: %s", why)

    @property
    def _writer_lock(self) -> threading.RLock | None:
        if self._writer_lock_url != self.url:
            self._writer_lock_value, self._writer_lock_url = sqlite_writer_lock(self.url), self.url
        return self._writer_lock_value

    def has_tables(self) -> bool:
        return inspect(self.engine).has_table("domains")

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._sessionmaker = self._readonly_sessionmaker = None


def flush_or_conflict(s: Session, what: str) -> None:
    """Flush pending writes; a uniqueness or foreign-key violation is a 409 naming ``what``."""
    try:
        s.flush()
    except IntegrityError:
        raise Conflict(f"{what} conflicts with existing data") from None
