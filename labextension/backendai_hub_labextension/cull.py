"""The stop the hub's service plans for this session ("stop at T because R"), and its banner in the
terminals that are open when it arrives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

BANNER_STYLE = "\x1b[1;37;41m"  # bold white on red: it must be seen among a program's output
RESET = "\x1b[0m"


class BadInput(ValueError):
    """A field of the service's request is wrong; ``field`` names it."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class PlannedStop:
    stop_at: datetime | None = None
    reason: str | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"stop_at": _iso(self.stop_at), "reason": self.reason, "updated_at": _iso(self.updated_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse(body: Any, now: datetime | None = None) -> PlannedStop:
    """The service's ``{"stop_at": ISO-8601 | null, "reason": str | null}``; BadInput names a bad field."""
    if not isinstance(body, Mapping):
        raise BadInput("the body must be a JSON object", "body")
    now = now or datetime.now(timezone.utc)
    raw = body.get("stop_at")
    if raw is None:
        return PlannedStop(updated_at=now)
    if not isinstance(raw, str):
        raise BadInput("stop_at must be an ISO-8601 date-time or null", "stop_at")
    try:
        stop_at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"stop_at: {raw[:64]!r} is not an ISO-8601 date-time", "stop_at") from None
    if stop_at.tzinfo is None:
        raise BadInput("stop_at must carry a time zone", "stop_at")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise BadInput("reason must be a non-empty string of at most 500 characters", "reason")
    return PlannedStop(stop_at, " ".join(reason.split()), now)


def banner(stop: PlannedStop) -> str:
    """The lines written into open terminals (their screens, never their input)."""
    if stop.stop_at is None:
        return f"\r\n{BANNER_STYLE} backendai-hub: the planned stop of this session is called off {RESET}\r\n"
    at = stop.stop_at.astimezone(timezone.utc).strftime("%H:%M:%S UTC")
    return (f"\r\n{BANNER_STYLE} backendai-hub: this session will be stopped at {at}: {stop.reason}. "
            f"Save your work. {RESET}\r\n")


def show_in_terminals(settings: Mapping[str, Any], text: str) -> int:
    """Write ``text`` to every client of every open terminal; how many got it. The terminals'
    activity is left as it was: a warning must not count as the activity that would call it off."""
    manager = settings.get("terminal_manager")
    terminals = getattr(manager, "terminals", None) or {}
    before = settings.get("terminal_last_activity") if isinstance(settings, dict) else None
    terms = list(terminals.values())
    lasts = [getattr(term, "last_activity", None) for term in terms]
    sent = 0
    for term in terms:
        for client in list(getattr(term, "clients", ())):
            try:
                client.on_pty_read(text)
                sent += 1
            except Exception:  # noqa: BLE001 - a closing socket: the others still get it
                continue
    for term, last in zip(terms, lasts):
        if last is not None:
            term.last_activity = last
    if isinstance(settings, dict) and "terminal_last_activity" in settings:
        settings["terminal_last_activity"] = before
    return sent
