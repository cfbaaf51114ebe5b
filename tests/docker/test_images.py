"""The air-gapped session image build (kernels/build.sh) and the image it makes, on a real engine."""

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "backendai-hub/notebook:latest"


def _build():
    return subprocess.run(
        ["bash", str(REPO_ROOT / "kernels" / "build.sh")],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def _image_id(ref):
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", ref],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _run_offline(*argv):
    return subprocess.run(
        ["docker", "run", "--rm", "--network", "none", IMAGE, *argv],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def built_image():
    """Build (or confirm cached) the session images once; yield the notebook image id."""
    _build()
    return _image_id(IMAGE)


def test_singleuser_matches_hub_major(built_image):
    out = _run_offline("jupyterhub-singleuser", "--version")
    version = out.stdout.strip().splitlines()[-1]
    assert version.startswith("6."), out.stdout + out.stderr


def test_labels_follow_backendai_convention(built_image):
    out = subprocess.run(
        ["docker", "image", "inspect", IMAGE], check=True, capture_output=True, text=True
    )
    labels = json.loads(out.stdout)[0]["Config"]["Labels"]
    assert labels["ai.backend.kernelspec"] == "1"
    assert labels["ai.backend.resource.min.cpu"] == "1"
    assert labels["ai.backend.resource.min.mem"] == "256m"
    assert "jupyterlab:http:8888" in labels["ai.backend.service-ports"].split(",")
    assert labels["ai.backend.runtime-type"] == "python"
    assert labels["ai.backend.runtime-path"] == "/opt/backend.ai/bin/python3"
    assert set(labels["ai.backend.features"].split()) >= {"uid-match", "batch", "query"}
    assert labels["ai.backend.base-distro"]


def test_default_user_is_uid_1000(built_image):
    assert _run_offline("id", "-u").stdout.strip() == "1000"
    assert _run_offline("sh", "-c", 'echo "$HOME:$PWD"').stdout.strip() == "/home/work:/home/work"


def test_rebuild_without_changes_is_cached(built_image):
    out = _build()
    assert _image_id(IMAGE) == built_image
    assert "cached" in out.stdout, out.stdout + out.stderr


def test_no_wheelhouse_left_in_image(built_image):
    out = _run_offline("sh", "-c", "ls -d /tmp/build 2>/dev/null; find /opt /tmp /home -name '*.whl'")
    assert out.stdout.strip() == ""


def test_the_server_start_does_not_build_the_iri_grammar(built_image):
    # jsonschema's optional "iri" format check (rfc3987-syntax, on lark) cost ~0.5 s of every session's
    # start; the image leaves it out, and the server's imports still work without it
    script = ("import importlib.util, sys\n"
              "import jupyterhub.singleuser, jupyter_events.logger\n"
              "print(sorted(m for m in ('rfc3987_syntax', 'lark') if importlib.util.find_spec(m)))\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rfc3987_syntax', 'lark')))\n")
    out = _run_offline("python", "-c", script)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout + out.stderr
