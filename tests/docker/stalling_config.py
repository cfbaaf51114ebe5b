"""Extra hub settings for tests/docker/test_hub_faults.py (loaded through BACKENDAI_HUB_EXTRA_CONFIG).

``StallingSpawner`` is the real spawner with two servers that stall where a hub can be killed mid-spawn:
``stall-admitted`` waits after admission, before any container exists; ``stall-started`` starts its
container with a command that never serves, so the hub waits for a server that is never ready.
"""

import asyncio

from backendai_hub.spawner.spawner import BackendAISpawner


class StallingSpawner(BackendAISpawner):
    async def launch_container(self):
        if self.name == "stall-admitted":
            await asyncio.sleep(3600)
        if self.name == "stall-started":
            self.cmd = ["sh", "-c", "sleep 3600", "--"]  # the hub's arguments land in $0, $1, ...
        return await super().launch_container()


c = get_config()  # noqa: F821 - traitlets provides it in config files
c.JupyterHub.spawner_class = StallingSpawner
c.Spawner.http_timeout = 20  # the restarted hub gives up on the server that never answers sooner
