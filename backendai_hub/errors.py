"""Typed errors that reach a user: the CLI maps them to exit 2, the REST service to their HTTP status.

Every error a caller sees as a status lives here; errors internal to one module (a firewall that
cannot be set up, a slot that does not parse) stay in that module and are translated at its edge.
"""


class TenancyError(Exception):
    """Base class; ``status`` is the HTTP status the REST service answers with."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_json(self) -> dict:
        out = {"error": type(self).__name__, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


class InvalidInput(TenancyError):
    status = 400


class Forbidden(TenancyError):
    status = 403


class NotFound(TenancyError):
    status = 404


class Conflict(TenancyError):
    status = 409


class Unauthorized(TenancyError):
    """No valid hub token or keypair signature."""

    status = 401


class RemoteError(TenancyError):
    """The hub could not be reached, or failed on its side."""

    status = 502
