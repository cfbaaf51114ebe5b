"""BackendAIAuthenticator: sign in with username or email and password against our tenancy."""

from __future__ import annotations

import asyncio

from jupyterhub.auth import Authenticator
from sqlalchemy import select
from tornado import web
from traitlets import default

from .db import Database
from .keys import hash_password, password_needs_rehash, verify_password
from .models import User, UserRole, UserStatus


class BackendAIAuthenticator(Authenticator):
    """Authenticates against backendai-hub's users; the tenancy database is the allow list."""

    @default("allow_all")
    def _allow_all_default(self):
        # only users present and active in our database can authenticate at all
        return True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # fail at hub start, not at first sign-in, when the schema is missing or outdated
        self.database.ensure_schema()

    @property
    def database(self) -> Database:
        return Database.instance(parent=self)

    def _check_password(self, login: str, password: str) -> dict | None:
        """Blocking: look the user up and verify the argon2id hash (run in an executor)."""
        login = login.strip()
        col = User.email if "@" in login else User.username
        with self.database.session() as s:
            user = s.scalar(select(User).where(col == login.lower()))
            if user is None:
                verify_password(None, password)  # same cost either way: no user enumeration by timing
                self.log.warning("Failed sign-in for unknown user %r", login)
                return None
            if not verify_password(user.password_hash, password):
                self.log.warning("Failed sign-in for %s: wrong password", user.username)
                return None
            if user.status != UserStatus.active:
                self.log.warning("Refused sign-in for %s: user is inactive", user.username)
                return {"refused": f"user {user.username!r} is inactive"}
            if not user.domain.is_active:
                self.log.warning("Refused sign-in for %s: domain %s is inactive", user.username,
                                 user.domain.name)
                return {"refused": f"domain {user.domain.name!r} is inactive"}
            if password_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            return {
                "name": user.username,
                "admin": user.role == UserRole.superadmin,
                "auth_state": {"domain": user.domain.name, "role": user.role.value},
            }

    async def authenticate(self, handler, data):
        """Return the hub user model for valid credentials, else None (the form shows the error)."""
        login, password = (data or {}).get("username") or "", (data or {}).get("password") or ""
        if not login or not password:
            return None
        result = await asyncio.get_running_loop().run_in_executor(
            None, self._check_password, login, password)
        if result is not None and "refused" in result:
            raise web.HTTPError(403, result["refused"])
        return result
