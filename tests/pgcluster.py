"""A private PostgreSQL cluster for fault tests: initdb into a temporary directory, pg_ctl on a free
port of 127.0.0.1, stopped and started at will. The suite's shared server (scripts/ensure-postgres.sh)
is never touched: other tests use it meanwhile."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def find_bindir() -> str | None:
    """PostgreSQL's server binaries, as scripts/ensure-postgres.sh finds them (newest Debian version first)."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in
                    Path(p).parent.name.split(".") if x.isdigit()], reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """One throwaway cluster: :meth:`start`, :meth:`stop` (``fast`` ends sessions with an admin shutdown,
    ``immediate`` is a crash: recovery runs at the next start), :meth:`sql` as the superuser.

    PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to the ``postgres`` user,
    as in scripts/ensure-postgres.sh.
    """

    def __init__(self, bindir: str, *, max_connections: int = 40):
        self.bindir = bindir
        self.port = free_port()
        self.max_connections = max_connections
        self.data = tempfile.mkdtemp(prefix="bhub-private-pg-", dir="/tmp")  # reachable by 'postgres'
        self._as: dict = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")  # KeyError: no such user (the caller says what is missing)
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
                        "env": {**os.environ, "HOME": self.data, "USER": "postgres"}}
        os.chmod(self.data, 0o700)
        self._pg(["initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])

    def _pg(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([os.path.join(self.bindir, args[0]), *args[1:]], capture_output=True, text=True,
                              cwd=self.data, timeout=120, **self._as)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n"
                               f"{self.log_tail()}")
        return done

    def log_tail(self) -> str:
        try:
            return Path(self.data, "server.log").read_text()[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start and wait until it accepts connections."""
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off "
                f"-c max_connections={self.max_connections}")
        self._pg(["pg_ctl", "-D", self.data, "-l", os.path.join(self.data, "server.log"), "-w", "-t", "60",
                  "-o", opts, "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop and wait until it is gone (``fast``, or ``immediate`` for a crash)."""
        self._pg(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])

    @property
    def running(self) -> bool:
        return self._pg(["pg_ctl", "-D", self.data, "status"], check=False).returncode == 0

    def url(self, dbname: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Run one statement as the superuser (psql over TCP); its output, tuples only."""
        return self._pg(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", dbname,
                         "-v", "ON_ERROR_STOP=1", "-tAc", statement]).stdout.strip()

    def destroy(self) -> None:
        if self.running:
            self.stop("immediate")
        shutil.rmtree(self.data, ignore_errors=True)


def private_postgres(scope: str = "module"):
    """A fixture: a :class:`PrivatePostgres` of its own for the ``scope``, started, destroyed afterwards.
    Without PostgreSQL's server binaries it fails under CI (skips only on a developer's bare pytest)."""

    def private_pg():
        from tests.conftest import unavailable

        bindir = find_bindir()
        if bindir is None:
            unavailable("PostgreSQL's server binaries (initdb, pg_ctl)", "install Debian's postgresql (make test does)")
        try:
            pg = PrivatePostgres(bindir)
            pg.start()
        except (KeyError, RuntimeError, OSError) as e:
            unavailable("a private PostgreSQL cluster", f"initdb/pg_ctl failed: {e}")
        yield pg
        pg.destroy()

    private_pg.__doc__ = "A PostgreSQL cluster of its own on a free port of 127.0.0.1 (stopped and restarted by tests)."
    return pytest.fixture(scope=scope)(private_pg)
