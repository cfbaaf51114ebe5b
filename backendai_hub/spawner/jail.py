"""Pure builders of the container hardening options (capabilities, privileges, limits)."""

from __future__ import annotations

SESSION_UID = 1000
SESSION_GID = 1000


def jail_host_config(*, pids_limit: int, nofile: int, tmp_size: str) -> dict:
    """Docker host-config options that every session gets, whatever its policy."""
    return {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": pids_limit,
        "ulimits": [{"Name": "nofile", "Soft": nofile, "Hard": nofile}],
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={tmp_size}"},
        "privileged": False,
    }
