"""The Docker session network: one labelled bridge with inter-session traffic off, created once."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

LABEL = "ai.backend.hub"


def bridge_name(network_name: str) -> str:
    """Deterministic bridge interface name for a network: "bhub-" + 10 hex digits (15 characters)."""
    return "bhub-" + hashlib.sha256(network_name.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SessionNetwork:
    """A session bridge network as the firewall needs it."""

    name: str
    id: str
    bridge: str
    gateway: str
    subnet: str


class SessionNetworkError(RuntimeError):
    """A network of that name exists but is not one of ours, or lacks what the firewall needs."""


def session_network_options(name: str) -> dict:
    """Docker `networks.create` keyword arguments for a session network."""
    return {
        "driver": "bridge",
        "options": {
            # Sessions of different users share the bridge: they must not talk to each other.
            "com.docker.network.bridge.enable_icc": "false",
            # A known interface name is what the host guard and route_localnet are keyed on.
            "com.docker.network.bridge.name": bridge_name(name),
        },
        "labels": {LABEL: "1"},
    }


def _find_network(docker_client, name: str):
    # The `name` filter matches substrings; only an exact match is the network asked for.
    for network in docker_client.networks.list(names=[name]):
        if network.name == name:
            network.reload()
            return network
    return None


def _describe(network) -> SessionNetwork:
    attrs = network.attrs
    if attrs.get("Labels", {}).get(LABEL) != "1":
        raise SessionNetworkError(f"network {network.name!r} exists but is not labelled {LABEL}=1")
    options = attrs.get("Options") or {}
    bridge = options.get("com.docker.network.bridge.name")
    if options.get("com.docker.network.bridge.enable_icc") != "false" or not bridge:
        raise SessionNetworkError(f"network {network.name!r} exists without icc disabled and a named bridge")
    config = ((attrs.get("IPAM") or {}).get("Config") or [{}])[0]
    subnet = config.get("Subnet")
    if not subnet:
        raise SessionNetworkError(f"network {network.name!r} has no IPv4 subnet")
    # Docker omits the gateway when it chose the default; the default is the first host address.
    gateway = config.get("Gateway") or str(next(ipaddress.ip_network(subnet).hosts()))
    return SessionNetwork(network.name, network.id, bridge, gateway, subnet)


def ensure_session_network(docker_client, name: str, subnet: str | None = None) -> SessionNetwork:
    """Create the session bridge network, or reuse it if it already exists (blocking Docker calls)."""
    import docker.errors
    import docker.types

    network = _find_network(docker_client, name)
    if network is None:
        kwargs = session_network_options(name)
        if subnet:
            kwargs["ipam"] = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            network = docker_client.networks.create(name, check_duplicate=True, **kwargs)
            network.reload()
        except docker.errors.APIError as e:
            # Another hub process created it between our look-up and create: use theirs.
            network = _find_network(docker_client, name)
            if network is None:
                raise SessionNetworkError(f"cannot create network {name!r}: {e}") from e
    return _describe(network)


def remove_session_network(docker_client, name: str) -> bool:
    """Remove a session network of ours; False when it did not exist. Remove its host guard first."""
    import docker.errors

    network = _find_network(docker_client, name)
    if network is None:
        return False
    if network.attrs.get("Labels", {}).get(LABEL) != "1":
        raise SessionNetworkError(f"refusing to remove network {name!r}: not labelled {LABEL}=1")
    try:
        network.remove()
    except docker.errors.NotFound:
        return False
    return True
