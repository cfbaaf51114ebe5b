"""[apps] The spawner's part in apps: a session started with ``app`` lands on it, and the two image labels
``ai.backend.envs.userid`` (the session's uid/gid in the variables it names) and ``ai.backend.run-as-root``
(refused unless an admin allows root for that image)."""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from traitlets import HasTraits, List, Unicode

from ..errors import Forbidden
from ..session_user import SESSION_GID, SESSION_HOME, SESSION_UID

RUN_AS_ROOT_LABEL = "ai.backend.run-as-root"
ENVS_USERID_LABEL = "ai.backend.envs.userid"
# JupyterLab is the server itself; every other app is a jupyter-server-proxy route at <prefix>/<app>/
SERVER_APP = "jupyterlab"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TRUE = {"1", "true", "yes", "on"}
# names an image label may not take over: the loader's, the interpreter's, the hub's and ours
_RESERVED = re.compile(r"(LD_|PYTHON|JUPYTERHUB_|JPY_|BACKENDAI_|CUDA_|NVIDIA_)|(PATH|HOME|USER|SHELL)\Z")


class ImageLabelError(Forbidden):
    """An image label the jail does not accept (its message names the label and the rule)."""


def landing_path(app: str) -> str | None:
    """The server URL a session with ``app`` opens on, relative to its prefix; None: the server's default."""
    return None if app == SERVER_APP else f"/{app}/"


def wants_root(labels: Mapping[str, str]) -> bool:
    return str(labels.get(RUN_AS_ROOT_LABEL, "")).strip().lower() in _TRUE


def root_allowed(image_tags: Sequence[str], allowed: Sequence[str]) -> bool:
    """Whether an admin's ``allow_root_images`` names one of the image's tags (``repo`` means ``repo:latest``)."""
    names = {a if ":" in a.rsplit("/", 1)[-1] else f"{a}:latest" for a in allowed}
    return bool(names & set(image_tags))


def check_root(image_ref: str, image_tags: Sequence[str], labels: Mapping[str, str], allowed: Sequence[str]) -> bool:
    """True when the session runs as root; raises ImageLabelError when the image asks and no admin allowed it."""
    if not wants_root(labels):
        return False
    if root_allowed(image_tags, allowed):
        return True
    raise ImageLabelError(
        f"image {image_ref} has the label {RUN_AS_ROOT_LABEL}={labels.get(RUN_AS_ROOT_LABEL)}: sessions run as the "
        f"unprivileged session user (uid {SESSION_UID}), and root is refused unless an admin lists the image in "
        "BackendAISpawner.allow_root_images", field="image")


def userid_environment(image_ref: str, labels: Mapping[str, str], uid: int = SESSION_UID,
                       gid: int = SESSION_GID) -> dict[str, str]:
    """``ai.backend.envs.userid=UIDVAR[,GIDVAR]`` -> {UIDVAR: uid, GIDVAR: gid}; a malformed label is refused."""
    value = labels.get(ENVS_USERID_LABEL)
    if value is None or not value.strip():
        return {}
    names = [n.strip() for n in value.split(",")]
    if (len(names) > 2 or not all(_ENV_NAME.match(n) and not _RESERVED.match(n) for n in names)
            or len(set(names)) != len(names)):
        raise ImageLabelError(f"image {image_ref} has the label {ENVS_USERID_LABEL}={value!r}: it must name one or "
                              "two environment variables (uid, then gid), e.g. USERID,GROUPID, none of PATH, HOME, USER, SHELL "
                              "or starting LD_, PYTHON, JUPYTERHUB_, JPY_, BACKENDAI_, CUDA_, NVIDIA_", field="image")
    return dict(zip(names, (str(uid), str(gid))))


def root_host_config(host_config: dict, home: str) -> dict:
    """The jail's host config for a root session: its scratch home owned by root (uid 0 holds no
    capability, so it could not write a home owned by the session user); everything else unchanged."""
    tmpfs = dict(host_config.get("tmpfs") or {})
    if home in tmpfs:
        tmpfs[home] = re.sub(r"\bgid=\d+", "gid=0", re.sub(r"\buid=\d+", "uid=0", tmpfs[home]))
    return {**host_config, "tmpfs": tmpfs}


class AppsMixin(HasTraits):
    """Mixed into the spawner: ``c.BackendAISpawner.allow_root_images`` and the app a session lands on."""

    allow_root_images = List(
        Unicode(), default_value=[],
        help="Images (tags; a bare repository means its :latest) whose label ai.backend.run-as-root=1 is honoured: "
             "their sessions run as root (uid 0) instead of the session user. Off by default: every other such "
             "image is refused at spawn with a reason. Risk: root in a container can change everything the image "
             "holds and every file of mounted vfolders regardless of owner, and a kernel or runtime hole is a "
             "root hole; the jail's other limits (capabilities dropped, no-new-privileges, seccomp, read-only "
             "image) still apply. List only images you trust as much as the host.",
    ).tag(config=True)

    _configured_default_url: str | None = None
    _configured_args: list | None = None

    def _check_image_labels(self, opts) -> None:
        """Before admission: refuse what an image's labels ask that the jail does not grant."""
        labels = opts.image.labels
        self._runs_as_root = check_root(opts.image.ref, opts.image.tags, labels, self.allow_root_images)
        self._userid_env = userid_environment(opts.image.ref, labels)

    def _apply_app(self, opts) -> None:
        """After the container options: the landing URL, the uid/gid variables, root when allowed."""
        if self._configured_default_url is None:
            self._configured_default_url = self.default_url or ""
            self._configured_args = list(self.args)
        self.args = list(self._configured_args)
        landing = landing_path(opts.app)
        self.default_url = landing if landing is not None else self._configured_default_url
        if getattr(self, "_userid_env", None):
            self.environment = {**self._userid_env, **self.environment}  # the spawner's own values win
        if getattr(self, "_runs_as_root", False):
            self.log.warning("Session of %s runs as root: image %s is in allow_root_images", self._log_name,
                             opts.image.ref)
            self.extra_create_kwargs = {**self.extra_create_kwargs, "user": "0:0"}
            self.extra_host_config = root_host_config(self.extra_host_config, SESSION_HOME)
            self.args = [*self.args, "--allow-root"]  # jupyter-server refuses root without it
