"""The spawner glue: JupyterHub hooks over DockerSpawner, calling the pure builders."""

from __future__ import annotations

from dockerspawner import DockerSpawner
from traitlets import Integer, Unicode, default

from .jail import SESSION_GID, SESSION_UID, jail_host_config


class BackendAISpawner(DockerSpawner):
    """Launches each session as a jailed container on the project's own Docker network."""

    @default("image")
    def _default_image(self):
        return "backendai-hub/notebook:latest"

    @default("pull_policy")
    def _default_pull_policy(self):
        # images are built air-gapped on this host; never reach for a registry implicitly
        return "never"

    @default("remove")
    def _default_remove(self):
        return True

    pids_limit = Integer(
        512, help="Maximum number of processes (and threads) in a session container; stops fork bombs.",
    ).tag(config=True)

    nofile_limit = Integer(4096, help="Open-file limit (RLIMIT_NOFILE) inside sessions.").tag(config=True)

    tmp_size = Unicode("256m", help="Size of the tmpfs mounted at /tmp in sessions.").tag(config=True)

    @default("extra_host_config")
    def _default_extra_host_config(self):
        return jail_host_config(pids_limit=self.pids_limit, nofile=self.nofile_limit,
                                tmp_size=self.tmp_size)

    @default("extra_create_kwargs")
    def _default_extra_create_kwargs(self):
        return {"user": f"{SESSION_UID}:{SESSION_GID}", "working_dir": "/home/work"}
