"""The jail's settings as traits, mixed into the spawner (``c.BackendAISpawner.pids_limit`` and the rest)."""

from __future__ import annotations

from traitlets import Bool, HasTraits, Integer, Unicode

from .jail import JailSettings


class JailSettingsMixin(HasTraits):
    """Limits and hardening of every session container; :attr:`jail_settings` hands them to the builders."""

    pids_limit = Integer(
        512, help="Maximum number of processes (and threads) in a session container; stops fork bombs.",
    ).tag(config=True)

    nofile_limit = Integer(4096, help="Open-file limit (RLIMIT_NOFILE) inside sessions.").tag(config=True)

    tmp_size = Unicode("256m", help="Size of the tmpfs mounted at /tmp in sessions.").tag(config=True)

    scratch_size = Unicode(
        "1g", help="Size of the writable scratch tmpfs at /home/work (it counts against the memory slot); "
                   "vfolders are mounted beneath it.",
    ).tag(config=True)

    read_only_rootfs = Bool(
        True, help="Mount the image read-only: only /home/work, /tmp and vfolders are writable.",
    ).tag(config=True)

    seccomp_profile = Unicode(
        None, allow_none=True,
        help="Path of a seccomp profile (JSON) to use instead of the stricter-than-Docker one shipped in the "
             "package; 'unconfined' is refused.",
    ).tag(config=True)

    runtime = Unicode(
        None, allow_none=True, help="OCI runtime for sessions, e.g. 'runsc' (gVisor) where installed.",
    ).tag(config=True)

    @property
    def jail_settings(self) -> JailSettings:
        return JailSettings(seccomp_profile=self.seccomp_profile, pids_limit=self.pids_limit,
                            nofile=self.nofile_limit, tmp_size=self.tmp_size, scratch_size=self.scratch_size,
                            read_only_rootfs=self.read_only_rootfs, runtime=self.runtime)
