"""Bootstrap for the embedded demo: schema, example tenancy, generated credentials, how to sign in."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

from . import fixtures as F
from . import tenancy as T
from .db import Database
from .errors import NotFound
from .keys import generate_password

EXAMPLE_FIXTURE = files("backendai_hub") / "fixtures" / "example.yaml"


def bootstrap(db: Database, state_dir: Path) -> dict:
    """Make sure the example tenancy exists; return the demo credentials (created once, then kept).

    Passwords and secret keys are generated on first run and kept in ``state_dir/credentials.json``
    (mode 0600), so that every later start can print them again.
    """
    db.upgrade()
    cred_file = state_dir / "credentials.json"
    if cred_file.exists():
        creds = json.loads(cred_file.read_text())
        with db.session() as s:
            if all(_exists(s, u) for u in creds):
                return creds
    data = F.load(str(EXAMPLE_FIXTURE))
    creds: dict = {}
    box = db.secrets
    with db.session() as s:
        F.populate(s, box, {k: v for k, v in data.items() if k != "keypairs"})
        for rec in data["keypairs"]:
            user = T.users.get(s, rec["user"])
            password = generate_password(16)
            T.users.update(s, user.username, {"password": password})
            for kp in list(user.keypairs):
                s.delete(kp)
            s.flush()
            kp, secret = T.keypairs.issue(s, box, {"user": user.username,
                                                  "resource_policy": rec["resource_policy"]})
            creds[user.username] = {"password": password, "access_key": kp.access_key,
                                    "secret_key": secret, "role": user.role.value}
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(cred_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f, indent=2)
    return creds


def _exists(s, username: str) -> bool:
    try:
        T.users.get(s, username)
        return True
    except NotFound:
        return False


def banner(creds: dict, url: str) -> str:
    lines = ["", "=" * 72, f"  backendai-hub demo is starting at {url}", ""]
    for name, c in creds.items():
        lines.append(f"  {c['role']:<12} username: {name:<8} password: {c['password']}")
    lines.append("")
    for name, c in creds.items():
        lines.append(f"  {name} keypair: access key {c['access_key']} (secret in credentials.json)")
    lines += ["", "  (all kept in .demo/credentials.json, mode 0600; `make demo-reset` starts afresh)", "=" * 72, ""]
    return "\n".join(lines)
