"""Typed errors of tenancy operations; the CLI maps them to exit 2, the REST service to 4xx."""


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
