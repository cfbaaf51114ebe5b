"""The service gets its settings one way: the hub's config, handed over by hub_service(config=c)."""

from __future__ import annotations

import json

import pytest
from traitlets import TraitError
from traitlets.config import Config

from backendai_hub.db import Database
from backendai_hub.images import DEFAULT_ALIASES
from backendai_hub.service.server import CONFIG_ENV, BackendAIService, hub_service
from backendai_hub.vfolders.storage import StorageHosts


def _service_side(entry: dict) -> Config:
    """What the service process loads: the one JSON variable of its environment."""
    return Config(json.loads(entry["environment"][CONFIG_ENV]))


def test_the_service_reads_the_hub_config_sections_it_uses():
    c = Config()
    c.Database.url = "sqlite:////srv/hub/backendai_hub.sqlite"
    c.StorageHosts.hosts = {"local": "/srv/vfolders", "nfs": "/mnt/nfs"}
    c.StorageHosts.default_host = "nfs"
    c.BackendAIService.cull_interval = 5.0
    c.BackendAIService.max_clock_skew = 60.0
    c.JupyterHub.bind_url = "http://127.0.0.1:8000"  # the hub's own: not the service's business
    cfg = _service_side(hub_service("http://127.0.0.1:8003", config=c))
    assert "JupyterHub" not in cfg
    service = BackendAIService(config=cfg)
    assert (service.cull_interval, service.max_clock_skew) == (5.0, 60.0)
    storage = StorageHosts(config=cfg)
    assert storage.hosts == {"local": "/srv/vfolders", "nfs": "/mnt/nfs"} and storage.default_host == "nfs"
    assert Database(config=cfg).url == "sqlite:////srv/hub/backendai_hub.sqlite"


def test_the_spawners_image_aliases_reach_the_images_route():
    c = Config()
    c.BackendAISpawner.image_aliases = {"r": "backendai-hub/r:latest"}
    assert BackendAIService(config=_service_side(hub_service("http://x:1", config=c))).image_aliases == {
        "r": "backendai-hub/r:latest"}
    # unset on both sides: the spawner's default aliases
    assert BackendAIService(config=_service_side(hub_service("http://x:1", config=Config()))).image_aliases == \
        DEFAULT_ALIASES
    # set for the service itself: that wins
    c.BackendAIService.image_aliases = {"py": "backendai-hub/notebook:latest"}
    assert BackendAIService(config=_service_side(hub_service("http://x:1", config=c))).image_aliases == {
        "py": "backendai-hub/notebook:latest"}


def test_the_encryption_key_travels_in_the_environment_never_in_the_config(monkeypatch):
    monkeypatch.setenv("BACKENDAI_HUB_CRYPT_KEY", "k" * 44)
    entry = hub_service("http://x:1", config=Config())
    assert entry["environment"]["BACKENDAI_HUB_CRYPT_KEY"] == "k" * 44
    assert "k" * 44 not in entry["environment"][CONFIG_ENV]


def test_the_password_cost_reaches_the_service_from_the_config_and_from_the_environment(monkeypatch):
    from backendai_hub.db import Database
    from backendai_hub.keys import PasswordCost, set_password_cost

    c = Config()
    c.Database.password_memory_kib, c.Database.password_time_cost = 19456, 2
    service_side = _service_side(hub_service("http://x:1", config=c))
    try:
        db = Database(config=service_side, url="sqlite://")
        assert (db.password_memory_kib, db.password_time_cost) == (19456, 2)
        monkeypatch.setenv("BACKENDAI_HUB_PASSWORD_COST", "m=12288,t=3")
        entry = hub_service("http://x:1", config=Config())
        assert entry["environment"]["BACKENDAI_HUB_PASSWORD_COST"] == "m=12288,t=3"
    finally:
        set_password_cost(PasswordCost())


def test_a_setting_that_is_not_plain_data_is_refused_at_hub_start():
    c = Config()
    c.StorageHosts.hosts = {"local": object()}
    with pytest.raises(ValueError, match="plain data"):
        hub_service("http://x:1", config=c)


@pytest.mark.parametrize("name, value", [("cull_warning", -1), ("cull_accelerator_window", -5),
                                         ("cull_accelerator_threshold", 101), ("cull_accelerator_threshold", -1)])
def test_culling_settings_out_of_range_are_refused_naming_the_setting(name, value):
    from traitlets import TraitError

    with pytest.raises(TraitError, match=f"BackendAIService.{name} must be between"):
        BackendAIService(**{name: value})


@pytest.mark.parametrize("name,value", [("cull_concurrency", 0), ("usage_sample_retention", -1),
                                        ("cull_warning", -5), ("cull_accelerator_threshold", 101)])
def test_out_of_range_culling_and_retention_settings_are_refused_naming_the_setting(name, value):
    with pytest.raises(TraitError, match=f"BackendAIService.{name} must be"):
        BackendAIService(**{name: value})
