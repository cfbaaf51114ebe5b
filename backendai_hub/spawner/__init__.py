"""BackendAISpawner: a DockerSpawner that launches hardened session containers."""

from .spawner import BackendAISpawner

__all__ = ["BackendAISpawner"]
