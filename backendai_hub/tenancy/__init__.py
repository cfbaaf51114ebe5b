"""Tenancy operations shared by the CLI, fixtures and REST service, one module per resource.

Every operation takes an open SQLAlchemy session (one transaction, owned by the caller), parses its
input once with :mod:`backendai_hub.validation` before writing, and raises
:mod:`backendai_hub.errors` types with a clear message.
"""

from . import domains, groups, keypairs, policies, users

__all__ = ["domains", "groups", "keypairs", "policies", "users"]
