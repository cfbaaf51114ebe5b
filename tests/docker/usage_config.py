"""Extra hub settings for tests/docker/test_usage.py (loaded through BACKENDAI_HUB_EXTRA_CONFIG): the
mock GPUs report a fixed utilisation, so GPU-hours busy are known in advance."""

c = get_config()  # noqa: F821 - traitlets provides it
c.MockPlugin.live = {"0": {"util_percent": 50, "mem_used": "2g"}, "1": {"util_percent": 50, "mem_used": "2g"}}
