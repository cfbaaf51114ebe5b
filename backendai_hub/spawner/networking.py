"""The spawner's part in the session network: the network and host guard, set up once per hub process
(and again when the engine made the bridge anew), the hub's address as sessions see it, and each
session's egress rules. A mixin of BackendAISpawner; ``setup_network`` is an engine hook (tests/mocking.py)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import docker
from tornado import web

from .. import admission as S
from .firewall import Firewall, FirewallError, host_guard_intact
from .names import firewall_tag
from .network import SessionNetwork, ensure_session_network
from .once import once

_networks: dict[tuple, SessionNetwork] = {}  # guarded networks, set up once per hub process


class NetworkingMixin:
    """Needs ``network_name``, ``firewall``, ``hub_connect_url``, ``session_id`` and ``object_id``."""

    firewall_tag: str | None = None  # the tag of this session's egress rules, once installed

    def _session_hub_port(self) -> int:
        """The proxy's public port, through which sessions reach the hub's API."""
        if self.hub_connect_url:
            return urlparse(self.hub_connect_url).port or 80
        from jupyterhub.app import JupyterHub

        return urlparse(JupyterHub.instance().bind_url).port or 80

    async def _ensure_network(self) -> None:
        """Create the session network and guard the host from it, once per hub process.

        Sessions reach the hub only as users do, through the proxy's public port: the guard forwards
        <gateway>:<port> to the proxy on 127.0.0.1 and drops everything else aimed at the host.
        """
        port = self._session_hub_port()
        key = (self.network_name, port, self.firewall)
        if key in _networks and not self.network_still_set_up(_networks[key]):
            del _networks[key]  # the engine made the bridge anew (it restarted): set it up again
        try:
            net = await once(_networks, key,
                             lambda: asyncio.get_running_loop().run_in_executor(None, self.setup_network, port))
        except FirewallError as e:
            raise web.HTTPError(503, f"sessions cannot be isolated on this host: {e}") from None
        if self.hub_connect_url is None:
            self.hub_connect_url = f"http://{net.gateway}:{port}"

    async def _allow_egress(self, ip: str, charge: S.Charge) -> None:
        # recorded before the rules go in: a half-applied policy is removed by the same tag
        tag = self.firewall_tag = firewall_tag(self.session_id, self.object_id)
        if not self.firewall:
            return
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: Firewall().allow_session(ip, charge.egress, list(charge.egress_allowlist), tag))

    def setup_network(self, port: int) -> SessionNetwork:
        """Blocking: the session network, with the host guard where the firewall is on."""
        # the host guard is iptables on this machine: the engine must be the local one
        net = ensure_session_network(docker.from_env(), self.network_name)
        if self.firewall:
            Firewall().install_host_guard(net.bridge, net.gateway, port)
        return net

    def network_still_set_up(self, net: SessionNetwork) -> bool:
        """Whether the bridge still has the guard's per-bridge setting (a file read; no iptables run)."""
        return not self.firewall or host_guard_intact(net.bridge)
