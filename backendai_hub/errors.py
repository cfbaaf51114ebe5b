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

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the REST service sends with this error (none by default)."""
        return {}


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


class AdmissionDenied(Forbidden):
    """A policy (or the host) cannot fit the session; the message names the level and slot."""

    def __init__(self, message: str, *, level: str | None = None, slot: str | None = None):
        super().__init__(message, field="resources" if slot and slot != "sessions" else None)
        self.level, self.slot = level, slot


class BadToken(TenancyError):
    """A transfer token (a Backend.AI storage-proxy URL's) that is expired, forged or for another use."""

    status = 401


class PreconditionFailed(TenancyError):
    """A tus request in a protocol version we do not speak."""

    status = 412


class QuotaExceeded(TenancyError):
    """An upload that does not fit in the folder's quota."""

    status = 413


class UnsupportedMediaType(TenancyError):
    status = 415


class RangeNotSatisfiable(TenancyError):
    """A download Range outside the file; ``size`` goes into Content-Range."""

    status = 416

    def __init__(self, message: str, size: int):
        super().__init__(message, field="Range")
        self.size = size


class UploadLocked(TenancyError):
    """Another request is writing this upload (one writer at a time)."""

    status = 423


class StorageError(TenancyError):
    """The storage host failed (answered as 503: the request was fine, the host was not)."""

    status = 503


class ServiceUnavailable(TenancyError):
    """A backend the request needs (the database) cannot be reached now; nothing was changed. The REST
    service answers 503 with ``Retry-After``; the request may be sent again as it was."""

    status = 503

    def __init__(self, message: str, *, backend: str = "database", retry_after: int = 5):
        super().__init__(message)
        self.backend, self.retry_after = backend, retry_after

    def to_json(self) -> dict:
        return {**super().to_json(), "unavailable": self.backend, "retry_after": self.retry_after}

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InsufficientStorage(TenancyError):
    """The storage host has no space left (HTTP 507): what was written so far stays where it was (an
    upload's bytes in its hidden part file, resumable once there is room), never half a file at its path."""

    status = 507
