"""Shared fixtures: real SQLite and PostgreSQL databases, the CLI in process, service checks.

Services a test needs (Docker, PostgreSQL, Chromium) are set up by `make test`. When one is missing
the test FAILS under CI (CI=true) or `make test` (BACKENDAI_HUB_STRICT=1); only a bare `pytest`
run on a developer's machine skips it, with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from backendai_hub import cli
from backendai_hub import fixtures as F
from backendai_hub.db import Database, normalize_url
from tests.hubproc import admin_token, hub_fixture, user_tokens

REPO = Path(__file__).resolve().parent.parent
STRICT = os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("BACKENDAI_HUB_STRICT") == "1"


def unavailable(what: str, how: str) -> None:
    """Fail (strict) or skip (a developer's bare pytest) when a real service is missing."""
    message = f"{what} is not available: {how}"
    if STRICT:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def need_loopback_quotas() -> None:
    """Fail where loopback quotas cannot be made: they need root and mkfs.ext4."""
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.fail("loopback quotas need root and mkfs.ext4 (the docker test machine has both)", pytrace=False)


def docker_ok() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def docker_available():
    if not docker_ok():
        unavailable("Docker", "run `make test` (it starts the engine) or scripts/ensure-docker.sh")


@pytest.fixture(scope="session")
def pg_admin_url():
    url = os.environ.get("BACKENDAI_HUB_TEST_PG_URL")
    if not url:
        unavailable("PostgreSQL", "run `make test` or set BACKENDAI_HUB_TEST_PG_URL")
    engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as e:  # noqa: BLE001 - any connection failure means the same thing
        unavailable("PostgreSQL", f"cannot connect to {url}: {e}")
    yield url
    engine.dispose()


@contextlib.contextmanager
def fresh_pg_database(admin_url: str):
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """The URL of an empty database, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backendai_hub.sqlite'}"
    else:
        admin_url = request.getfixturevalue("pg_admin_url")
        with fresh_pg_database(admin_url) as url:
            yield url


@pytest.fixture
def database(db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("BACKENDAI_HUB_CRYPT_KEY", raising=False)
    db = Database(url=db_url, crypt_key_file=str(tmp_path / "key"))
    db.upgrade()
    yield db
    db.dispose()


def database_with(tenancy: dict):
    """A fixture ``db``: the ``database`` of each backend, populated with ``tenancy``."""

    def db(database):
        with database.session() as s:
            F.populate(s, database.secrets, tenancy)
        return database

    return pytest.fixture(db)


class CLIResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def json(self):
        import json

        return json.loads(self.out)

    def __repr__(self):
        return f"CLIResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def run_cli(db_url, tmp_path, monkeypatch):
    """Run `backendai-hub --db-url <db> ARGS...` in process; returns code, stdout, stderr."""
    monkeypatch.setenv("BACKENDAI_HUB_CRYPT_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.delenv("BACKENDAI_HUB_CRYPT_KEY", raising=False)

    def run(*args: str, stdin: str | None = None) -> CLIResult:
        out, err = io.StringIO(), io.StringIO()
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(["--db-url", db_url, *args])
            except SystemExit as e:  # argparse usage errors
                code = e.code if isinstance(e.code, int) else 2
        return CLIResult(code, out.getvalue(), err.getvalue())

    return run


demo_hub = hub_fixture("demo", scope="session",
                       doc="The embedded demo configuration running as a real hub (real configurable-http-proxy).")


@pytest.fixture(scope="module")
def admin(hub):
    """An admin's API token on the module's ``hub``, the demo users signed in once."""
    return admin_token(hub)


@pytest.fixture(scope="module")
def tokens(hub):
    """API tokens of admin, manager and demo on the module's ``hub``."""
    return user_tokens(hub)


@pytest.fixture(scope="session")
def backend_ai_cli():
    """The real `backend.ai` command of backend.ai-client 23.9 (its own venv, see scripts/ensure-bai-client.sh)."""
    python = Path(os.environ.get("BACKENDAI_CLIENT_PYTHON", REPO / ".venv-bai" / "bin" / "python"))
    exe = python.with_name("backend.ai")
    if not exe.exists():
        unavailable("backend.ai-client", "run `make test` or scripts/ensure-bai-client.sh")
    return exe
