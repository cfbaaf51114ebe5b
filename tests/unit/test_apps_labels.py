"""The spawner's app rules as data: landing paths, run-as-root refused unless allowed, envs.userid."""

import pytest

from backendai_hub.errors import Forbidden
from backendai_hub.spawner.apps import check_root, landing_path, root_host_config, userid_environment
from backendai_hub.spawner.jail import JailSettings, jail_host_config

TAGS = ("backendai-hub/r:latest",)


@pytest.mark.parametrize("app, path", [("jupyterlab", None), ("rstudio", "/rstudio/"), ("shiny", "/shiny/"),
                                       ("shell", "/shell/")])
def test_landing_path(app, path):
    assert landing_path(app) == path


@pytest.mark.parametrize("labels", [{}, {"ai.backend.run-as-root": "0"}, {"ai.backend.run-as-root": ""}])
def test_no_root_without_the_label(labels):
    assert check_root("x", TAGS, labels, allowed=["backendai-hub/r"]) is False


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_root_refused_by_default_naming_label_and_rule(value):
    with pytest.raises(Forbidden) as e:
        check_root("backendai-hub/r:latest", TAGS, {"ai.backend.run-as-root": value}, allowed=[])
    assert e.value.status == 403 and e.value.field == "image"
    assert "ai.backend.run-as-root" in e.value.message and "allow_root_images" in e.value.message
    assert "uid 1000" in e.value.message


@pytest.mark.parametrize("allowed, ok", [(["backendai-hub/r"], True), (["backendai-hub/r:latest"], True),
                                         (["backendai-hub/r:other"], False), (["backendai-hub/rr"], False)])
def test_root_only_for_listed_images(allowed, ok):
    labels = {"ai.backend.run-as-root": "1"}
    if ok:
        assert check_root("backendai-hub/r:latest", TAGS, labels, allowed) is True
    else:
        with pytest.raises(Forbidden):
            check_root("backendai-hub/r:latest", TAGS, labels, allowed)


@pytest.mark.parametrize("value, env", [
    (None, {}), ("", {}), ("USERID", {"USERID": "1000"}), ("USERID,GROUPID", {"USERID": "1000", "GROUPID": "1000"}),
    (" NB_UID , NB_GID ", {"NB_UID": "1000", "NB_GID": "1000"}),
])
def test_userid_environment(value, env):
    labels = {} if value is None else {"ai.backend.envs.userid": value}
    assert userid_environment("img", labels) == env


@pytest.mark.parametrize("value", ["1USER", "A,B,C", "A,A", "X-Y", "LD_PRELOAD", "PATH", "JUPYTERHUB_API_TOKEN",
                                   "BACKENDAI_SESSION_ID", "CUDA_VISIBLE_DEVICES", "PYTHONPATH", "A;rm"])
def test_userid_label_refused_when_malformed_or_reserved(value):
    with pytest.raises(Forbidden) as e:
        userid_environment("img", {"ai.backend.envs.userid": value})
    assert "ai.backend.envs.userid" in e.value.message


def test_a_root_session_gets_a_root_owned_home_and_nothing_else_changes():
    config = jail_host_config(JailSettings())
    root = root_host_config(config, "/home/work")
    assert "uid=0" in root["tmpfs"]["/home/work"] and "gid=0" in root["tmpfs"]["/home/work"]
    assert "uid=1000" not in root["tmpfs"]["/home/work"]
    assert root["tmpfs"]["/tmp"] == config["tmpfs"]["/tmp"]
    assert root["cap_drop"] == ["ALL"] and root["security_opt"] == config["security_opt"]
    assert "uid=1000" in config["tmpfs"]["/home/work"]  # the input is not changed
