"""Egress policies (pure): the modes, the allowlist entries and their parser."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import NamedTuple, Sequence

POLICIES = ("none", "allowlist", "open")
# The cloud metadata address is blocked whatever the mode: it hands out the host's credentials.
METADATA_ADDRESS = "169.254.169.254"


class AllowEntry(NamedTuple):
    """One allowlisted TCP destination: an IPv4 network and a port."""

    network: str
    port: int


@dataclass(frozen=True)
class EgressPolicy:
    """A validated egress policy: `none`, `allowlist` (TCP host:port entries) or `open`."""

    mode: str
    allowlist: tuple[AllowEntry, ...] = ()

    @classmethod
    def parse(cls, mode: str, allowlist: Sequence[str] | None = None) -> EgressPolicy:
        """Validate a mode and allowlist strings; ValueError names the bad value."""
        if mode not in POLICIES:
            raise ValueError(f"unknown egress policy {mode!r}: expected one of {', '.join(POLICIES)}")
        entries = list(allowlist or ())
        if entries and mode != "allowlist":
            raise ValueError(f"egress policy {mode!r} takes no allowlist (got {entries!r})")
        parsed: list[AllowEntry] = []
        for entry in entries:
            item = parse_allow_entry(entry)
            if item not in parsed:  # duplicates would only add identical rules
                parsed.append(item)
        return cls(mode, tuple(parsed))


def parse_allow_entry(entry: str) -> AllowEntry:
    """Parse "10.1.2.3:443" or "10.0.0.0/8:80"; no host names, since rules must not depend on DNS."""
    if not isinstance(entry, str):
        raise ValueError(f"allowlist entry {entry!r}: expected a string 'host:port'")
    host, sep, port = entry.strip().rpartition(":")
    if not sep or not host:
        raise ValueError(f"allowlist entry {entry!r}: expected 'host:port' or 'cidr:port'")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"allowlist entry {entry!r}: port must be an integer 1-65535")
    try:
        network = ipaddress.ip_network(host, strict=True)
    except ValueError as e:
        raise ValueError(f"allowlist entry {entry!r}: {host!r} is not an IPv4 address or CIDR ({e})") from None
    if network.version != 4:
        raise ValueError(f"allowlist entry {entry!r}: only IPv4 is supported (session networks are IPv4)")
    return AllowEntry(str(network), int(port))
