"""BackendAISpawner: a DockerSpawner that launches hardened session containers.

The spawner class is imported lazily, so that the pure builders here (jail, firewall rules, network
options, options) can be used by other modules without pulling in JupyterHub and DockerSpawner.
"""

__all__ = ["BackendAISpawner"]


def __getattr__(name):
    if name == "BackendAISpawner":
        from .spawner import BackendAISpawner

        return BackendAISpawner
    raise AttributeError(name)
