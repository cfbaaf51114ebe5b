"""Pure resource-policy arithmetic: slot parsing, effective limits and admission decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Iterable, Mapping, Sequence

Slots = dict[str, Decimal]

# cpu, mem, cuda.device, cuda.shares, cuda.device:1g.10gb-mig, any plugin slot
SLOT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*(:[a-z0-9][a-z0-9._-]*)?$")

_BINARY_SUFFIX = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_AMOUNT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([kmgtpe]?)(?:i?b)?\s*$", re.IGNORECASE)

LEVEL_ORDER = ("keypair", "group", "domain")
# the largest amount of any slot: what a 64-bit engine field holds (8 EiB of memory, 2^63 cores)
MAX_AMOUNT = Decimal(2**63 - 1)
MAX_AMOUNT_TEXT = 64  # characters of an amount given as text: more is no amount anyone means


class SlotError(ValueError):
    """A resource slot name or amount that cannot be accepted; ``field`` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def is_bytes_slot(slot: str) -> bool:
    """Whether amounts of this slot are sizes in bytes (and so accept k/m/g/t suffixes)."""
    base = slot.split(":", 1)[0]
    return base == "mem" or base.endswith(".mem") or base in ("disk", "shmem")


def parse_amount(slot: str, value: object, *, allow_zero: bool = True, field: str | None = None) -> Decimal:
    """Parse one amount: ``2``, ``2.5``, or for byte slots ``4g`` / ``512m`` / ``1GiB`` (binary units)."""
    where = field or slot
    if isinstance(value, bool) or value is None:
        raise SlotError(where, f"{value!r} is not an amount")
    if isinstance(value, (int, Decimal)):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > MAX_AMOUNT_TEXT:
            raise SlotError(where, f"{value[:20]!r}… ({len(value)} characters) is not an amount")
        m = _AMOUNT_RE.match(value)
        if not m:
            raise SlotError(where, f"{value!r} is not an amount")
        number, suffix = m.group(1), m.group(2).lower()
        if suffix and not is_bytes_slot(slot):
            raise SlotError(where, f"{value!r}: unit suffixes are only allowed for memory slots")
        try:
            amount = Decimal(number) * (Decimal(1024) ** _BINARY_SUFFIX[suffix])
        except InvalidOperation:  # pragma: no cover - regex already guards this
            raise SlotError(where, f"{value!r} is not an amount") from None
    else:
        raise SlotError(where, f"{value!r} is not an amount")
    if not amount.is_finite():
        raise SlotError(where, f"{value!r} is not a finite amount")
    if amount < 0:
        raise SlotError(where, f"{value!r} is negative")
    if amount > MAX_AMOUNT:
        raise SlotError(where, f"{str(value)[:20]!r}… is too large (at most {MAX_AMOUNT})")
    if amount == 0 and not allow_zero:
        raise SlotError(where, f"{value!r} must be greater than zero")
    if is_bytes_slot(slot):
        amount = amount.to_integral_value()
    return amount.normalize() if amount != amount.to_integral_value() else Decimal(int(amount))


def parse_slots(value: str | Mapping[str, object] | None, *, allow_zero: bool = True,
                field: str = "resources") -> Slots:
    """Parse ``"cpu=2,mem=4g"`` or ``{"cpu": 2, "mem": "4g"}`` into ``{slot: Decimal}``.

    ``allow_zero`` is True for limits (``cuda.device=0`` forbids GPUs) and False for requests.
    """
    if value is None:
        return {}
    items: Iterable[tuple[str, object]]
    if isinstance(value, str):
        pairs = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            if "=" not in part:
                raise SlotError(field, f"{part!r} is not of the form slot=amount")
            name, _, amount = part.partition("=")
            pairs.append((name.strip(), amount.strip()))
        items = pairs
    elif isinstance(value, Mapping):
        items = value.items()
    else:
        raise SlotError(field, "must be a mapping of slot to amount or 'slot=amount,...'")
    slots: Slots = {}
    for name, amount in items:
        if not isinstance(name, str) or not SLOT_NAME_RE.match(name):
            raise SlotError(field, f"{name!r} is not a valid resource slot name")
        if name in slots:
            raise SlotError(field, f"slot {name!r} given twice")
        slots[name] = parse_amount(name, amount, allow_zero=allow_zero, field=f"{field}.{name}")
    return slots


def format_amount(slot: str, amount: Decimal) -> str:
    """Human form of an amount: byte slots with the largest exact binary suffix (``4g``)."""
    if is_bytes_slot(slot) and amount > 0:
        n = int(amount)
        for suffix, power in sorted(_BINARY_SUFFIX.items(), key=lambda kv: -kv[1]):
            if power and n % (1024 ** power) == 0:
                return f"{n // 1024 ** power}{suffix}"
        return str(n)
    return _plain(amount)


def _plain(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return text


def format_slots(slots: Mapping[str, Decimal]) -> str:
    """``cpu=2,mem=4g`` (sorted), or ``-`` when empty (unlimited)."""
    if not slots:
        return "-"
    return ",".join(f"{k}={format_amount(k, v)}" for k, v in sorted(slots.items()))


def slots_to_json(slots: Mapping[str, Decimal]) -> dict[str, str]:
    """JSON form, exact: amounts as decimal strings in base units (Backend.AI's convention)."""
    return {k: _plain(Decimal(v)) for k, v in sorted(slots.items())}


def slots_from_json(data: Mapping[str, object] | None) -> Slots:
    """Inverse of :func:`slots_to_json` for values already validated when stored."""
    return {k: Decimal(str(v)) for k, v in (data or {}).items()}


def add_slots(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Slots:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Decimal(0)) + v
    return out


def subtract_slots(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> Slots:
    """``a - b`` per slot, clamped at zero (usage never goes negative on release)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = max(Decimal(0), out.get(k, Decimal(0)) - v)
    return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class Level:
    """One level of the tenancy that limits a session: its kind, name and limits (absent = unlimited)."""

    kind: str
    name: str
    slots: Mapping[str, Decimal] = field(default_factory=dict)
    max_sessions: int | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True)
class Usage:
    """What is already held at one level: slot totals and the number of live sessions."""

    slots: Mapping[str, Decimal] = field(default_factory=dict)
    sessions: int = 0


@dataclass(frozen=True)
class Decision:
    """Outcome of :func:`admit`; falsy when denied. ``reason`` names the level, the slot, the limit and usage."""

    allowed: bool
    reason: str = ""
    level: str | None = None
    slot: str | None = None

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def effective_limits(levels: Iterable[Level]) -> Slots:
    """The minimum over all levels per slot; a slot no level limits is absent (unlimited)."""
    out: Slots = {}
    for level in levels:
        for slot, limit in level.slots.items():
            out[slot] = min(limit, out[slot]) if slot in out else limit
    return out


def effective_max_sessions(levels: Iterable[Level]) -> int | None:
    limits = [lv.max_sessions for lv in levels if lv.max_sessions is not None]
    return min(limits) if limits else None


def admit(request: Mapping[str, Decimal], levels: Sequence[tuple[Level, Usage]],
          known_slots: Iterable[str] | None = None) -> Decision:
    """Admit a session asking for ``request`` if every level has room for it and one more session.

    Levels are checked in the order given (keypair, group, domain by convention) and the first
    that cannot fit the request is named. ``known_slots``, when given, is the set of slots this
    hub can allocate; requesting any other is denied.
    """
    if known_slots is not None:
        known = set(known_slots)
        for slot in sorted(request):
            if slot not in known:
                return Decision(False, f"unknown resource slot {slot!r} (this hub offers: "
                                       f"{', '.join(sorted(known)) or 'none'})", None, slot)
    for slot, amount in request.items():
        if amount <= 0:
            return Decision(False, f"requested {slot}={_plain(amount)} must be greater than zero",
                            None, slot)
    for level, usage in levels:
        if level.max_sessions is not None and usage.sessions + 1 > level.max_sessions:
            return Decision(
                False,
                f"{level.label} allows {level.max_sessions} concurrent session"
                f"{'' if level.max_sessions == 1 else 's'}, {usage.sessions} running",
                level.kind, "sessions")
        for slot in sorted(request):
            if slot not in level.slots:
                continue
            limit = level.slots[slot]
            used = usage.slots.get(slot, Decimal(0))
            if used + request[slot] > limit:
                return Decision(
                    False,
                    f"{level.label} allows {slot}={format_amount(slot, limit)}, "
                    f"{format_amount(slot, used) if used else '0'} in use, "
                    f"{format_amount(slot, request[slot])} requested",
                    level.kind, slot)
    return ALLOW
