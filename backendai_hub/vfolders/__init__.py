"""Virtual folders: storage hosts, permission rules, safe paths, quotas, operations, session mounts, transfers."""

from .permissions import Access, FolderView, Subject, check, effective_permission
from .mounts import Mount, mounts_for, session_mounts
from .storage import StorageHosts

__all__ = ["Access", "FolderView", "Mount", "StorageHosts", "Subject", "check", "effective_permission",
           "mounts_for", "session_mounts"]
