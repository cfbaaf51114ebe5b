"""Pure builders of the session jail: seccomp, capabilities, read-only root, scratch, limits."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from ..session_user import SESSION_GID, SESSION_HOME, SESSION_UID

# CFS period Docker uses; the quota is cpu slots x this, so 1.5 slots = 150000us per 100000us.
CPU_PERIOD_US = 100_000
# The kernel rejects a CFS quota under 1 ms.
MIN_CPU_QUOTA_US = 1_000

# Capabilities an operator may add, and why one ever would; anything else is refused. The default
# is none: a non-root JupyterLab needs no capability at all. Docker (20.10 here) puts an added
# capability only in the bounding set of a non-root (uid 1000) process, and no-new-privileges stops
# setuid and file-capability binaries from raising it, so for our images cap_add only takes effect
# where an entrypoint starts as root and hands the capability to `work` as an ambient one.
ADDABLE_CAPS: dict[str, str] = {
    "NET_BIND_SERVICE": "an app inside the session must listen on a port below 1024",
    "SYS_NICE": "NUMA placement (numactl --membind: mbind/set_mempolicy, which the seccomp "
                "profile allows only with this capability) and raised priority for data loaders",
    "IPC_LOCK": "pinning host memory beyond RLIMIT_MEMLOCK for RDMA/InfiniBand or GPUDirect",
}

# Docker's own "seccomp=unconfined" and "seccomp=default" would silently drop our stricter profile.
_REFUSED_PROFILES = frozenset({"unconfined", "default", "builtin", ""})
_SIZE = re.compile(r"^[1-9][0-9]*[kmg]?$")
_RUNTIME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _normalize_cap(name: str) -> str:
    """'cap_net_bind_service' and 'NET_BIND_SERVICE' name the same capability."""
    cap = name.strip().upper()
    return cap[4:] if cap.startswith("CAP_") else cap


@dataclass(frozen=True)
class JailSettings:
    """What every session container gets, whatever its resource policy.

    Read-only root: the image (including the Python environment under /opt/backend.ai) cannot
    be changed by the user, so `pip install` into it fails with "Read-only file system". Users
    write only to two tmpfs mounts, both lost when the session ends: /tmp (`tmp_size`) and
    /home/work (`scratch_size`, owned by uid/gid, where vfolders are mounted as subfolders).
    Packages therefore go to scratch, e.g. `pip install --target ~/.local/lib/python3.11/site-packages`
    (or `pip install --user` in images whose venv enables the user site), or into a vfolder to
    survive the session. Dotfiles the image ships in /home/work are hidden by the scratch tmpfs.
    Both mounts allow exec (Docker's tmpfs default is noexec): compiled extension modules and
    pip's build directories must be loadable, and /home/work being executable already makes a
    noexec /tmp pointless. Files on both are charged to the session's memory limit.

    `seccomp_profile` is a path to a profile file; None means the one shipped beside this module.
    `runtime` names an OCI runtime such as "runsc" (gVisor); note that runsc ignores the seccomp
    profile unless started with --oci-seccomp, since it filters syscalls in its own kernel.
    `scratch_size` None means no tmpfs at /home/work (a persistent volume is mounted there).
    """

    seccomp_profile: str | None = None
    cap_add: tuple[str, ...] = ()
    no_new_privileges: bool = True
    uid: int = SESSION_UID
    gid: int = SESSION_GID
    read_only_rootfs: bool = True
    tmp_size: str = "256m"
    scratch_size: str | None = "1g"
    pids_limit: int = 512
    nofile: int = 4096
    runtime: str | None = None
    home: str = SESSION_HOME

    def __post_init__(self):
        if self.seccomp_profile is not None and self.seccomp_profile.strip().lower() in _REFUSED_PROFILES:
            raise ValueError(f"seccomp_profile {self.seccomp_profile!r} is refused: give a profile file path "
                             "or None for the shipped profile")
        caps = tuple(dict.fromkeys(_normalize_cap(c) for c in self.cap_add))
        for cap in caps:
            if cap not in ADDABLE_CAPS:
                raise ValueError(f"cap_add {cap!r} is not allowed in sessions; addable: {sorted(ADDABLE_CAPS)}")
        object.__setattr__(self, "cap_add", caps)
        for name in ("uid", "gid"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer (sessions never run as root), got {value!r}")
        for name in ("pids_limit", "nofile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("tmp_size", "scratch_size"):
            value = getattr(self, name)
            if value is None and name == "scratch_size":
                continue
            if not isinstance(value, str) or not _SIZE.match(value.lower()):
                raise ValueError(f"{name} must look like '256m', '1g' or a byte count, got {value!r}")
        if self.runtime is not None and not _RUNTIME.match(self.runtime):
            raise ValueError(f"runtime must be a runtime name such as 'runsc', got {self.runtime!r}")
        if not self.home.startswith("/") or self.home in ("/", "/tmp"):
            raise ValueError(f"home must be an absolute path other than / and /tmp, got {self.home!r}")


def default_seccomp_path() -> Path:
    """The seccomp profile shipped in this package."""
    return Path(str(resources.files(__package__).joinpath("seccomp.json")))


def _strip_comments(node: Any) -> Any:
    """Drop human-only "comment" keys: Docker keeps the profile in every container's inspect output."""
    if isinstance(node, dict):
        return {k: _strip_comments(v) for k, v in node.items() if k != "comment"}
    if isinstance(node, list):
        return [_strip_comments(v) for v in node]
    return node


def load_seccomp(path: str | Path | None = None) -> str:
    """The profile as the compact JSON text Docker wants after "seccomp=" in security_opt."""
    text = Path(path).read_text() if path is not None else default_seccomp_path().read_text()
    profile = json.loads(text)
    if profile.get("defaultAction") not in ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                            "SCMP_ACT_KILL_THREAD"):
        # an allow-by-default profile is a denylist, which is never stricter than Docker's default
        raise ValueError(f"seccomp profile {path or 'shipped'}: defaultAction must deny, "
                         f"got {profile.get('defaultAction')!r}")
    return json.dumps(_strip_comments(profile), separators=(",", ":"), sort_keys=False)


def _cpu_quota(cpu: Decimal | float | int | str) -> int:
    """CFS quota in microseconds for `cpu` slots, exact for decimal inputs such as 0.29."""
    if isinstance(cpu, bool):
        raise ValueError(f"cpu must be a number of slots, got {cpu!r}")
    slots = cpu if isinstance(cpu, Decimal) else Decimal(str(cpu))
    if not slots.is_finite() or slots <= 0:
        raise ValueError(f"cpu must be a positive number of slots, got {cpu!r}")
    quota = int(slots * CPU_PERIOD_US)
    if quota < MIN_CPU_QUOTA_US:
        raise ValueError(f"cpu {cpu!r} is below the kernel's minimum of {MIN_CPU_QUOTA_US / CPU_PERIOD_US} slots")
    return quota


def cpuset_string(cpuset: list[int] | tuple[int, ...]) -> str:
    """Docker's cpuset_cpus text: sorted, deduplicated, comma separated ("0,1,3")."""
    cpus = list(cpuset)
    if not cpus:
        raise ValueError("cpuset must name at least one cpu (None means any cpu)")
    for c in cpus:
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ValueError(f"cpuset entries must be cpu numbers >= 0, got {c!r}")
    return ",".join(str(c) for c in sorted(set(cpus)))


def limits_host_config(cpu: Decimal | float | int | None, mem_bytes: int | None,
                       cpuset: list[int] | tuple[int, ...] | None = None) -> dict:
    """Host-config kwargs for a policy's cpu slots, memory (no swap) and optional cpu pinning."""
    config: dict[str, Any] = {}
    if cpu is not None:
        config["cpu_period"] = CPU_PERIOD_US
        config["cpu_quota"] = _cpu_quota(cpu)
    if mem_bytes is not None:
        if isinstance(mem_bytes, bool) or not isinstance(mem_bytes, int) or mem_bytes < 6 * 1024 * 1024:
            # Docker refuses limits under 6 MiB; a bad value must fail here, not at container create
            raise ValueError(f"mem_bytes must be an integer of at least 6 MiB, got {mem_bytes!r}")
        config["mem_limit"] = mem_bytes
        # memory+swap equal to memory means no swap: a session over its limit is OOM-killed, not
        # slowed to a crawl by swapping against its neighbours
        config["memswap_limit"] = mem_bytes
        config["oom_kill_disable"] = False
    if cpuset is not None:
        config["cpuset_cpus"] = cpuset_string(cpuset)
    return config


def _tmpfs_options(size: str, *extra: str) -> str:
    # nosuid/nodev: nothing on scratch can gain privileges or reach devices; exec: see JailSettings
    return ",".join(("rw", "exec", "nosuid", "nodev", f"size={size.lower()}", *extra))


def jail_host_config(settings: JailSettings | None = None, *, cpu: Decimal | float | int | None = None,
                     mem_bytes: int | None = None, cpuset: list[int] | tuple[int, ...] | None = None) -> dict:
    """docker-py create_host_config kwargs jailing one session, plus its resource limits.

    Limits are left out where cpu/mem_bytes/cpuset are None.
    """
    settings = settings or JailSettings()
    security_opt = [f"seccomp={load_seccomp(settings.seccomp_profile)}"]
    if settings.no_new_privileges:
        security_opt.insert(0, "no-new-privileges:true")
    tmpfs = {"/tmp": _tmpfs_options(settings.tmp_size)}
    if settings.scratch_size is not None:
        tmpfs[settings.home] = _tmpfs_options(settings.scratch_size, f"uid={settings.uid}",
                                              f"gid={settings.gid}", "mode=0755")
    config: dict[str, Any] = {
        "privileged": False,
        "cap_drop": ["ALL"],
        "cap_add": list(settings.cap_add),
        "security_opt": security_opt,
        "pids_limit": settings.pids_limit,
        "ulimits": [{"Name": "nofile", "Soft": settings.nofile, "Hard": settings.nofile}],
        "read_only": settings.read_only_rootfs,
        "tmpfs": tmpfs,
    }
    if settings.runtime is not None:
        config["runtime"] = settings.runtime
    config.update(limits_host_config(cpu, mem_bytes, cpuset))
    return config


def jail_create_kwargs(settings: JailSettings | None = None) -> dict:
    """docker-py create_container kwargs: run as the unprivileged session user in its home."""
    settings = settings or JailSettings()
    return {"user": f"{settings.uid}:{settings.gid}", "working_dir": settings.home}

