"""Accelerators: the plugin interface, the cuda (NVML) and mock plugins, allocation and inventory."""

from .allocation import DeviceAllocator
from .base import COUNT, SHARE, AcceleratorPlugin, ContainerOptions, Device
from .registry import ENTRY_POINT_GROUP, Accelerators

__all__ = [
           "COUNT",
           "ENTRY_POINT_GROUP",
           "SHARE",
           "AcceleratorPlugin",
           "Accelerators",
           "ContainerOptions",
           "Device",
           "DeviceAllocator",
]
