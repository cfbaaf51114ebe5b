"""The sidebar frontend's unit tests (jest, labextension/src/__tests__) run inside the Python suite:
`make test` fails when they fail. labextension/build.sh --test sets up its Node toolchain (the
.venv-labext jlpm, the committed yarn.lock; only the npm registry is reached) and runs them."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.conftest import REPO, unavailable


def test_the_frontend_unit_tests_pass():
    if shutil.which("node") is None:
        unavailable("Node.js", "install Node.js >= 18 (the labextension builds with it)")
    r = subprocess.run(["bash", str(REPO / "labextension" / "build.sh"), "--test"], capture_output=True, text=True,
                       timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    m = re.search(r"Tests:\s+(?:(\d+) failed, )?(?:(\d+) skipped, )?(\d+) passed, (\d+) total", out)
    assert m, out[-3000:]
    failed, skipped, passed, total = (int(x or 0) for x in m.groups())
    # every test ran and passed (jest prints the counts; none skipped, none failed)
    assert (failed, skipped) == (0, 0) and passed == total >= 30, m.group(0)
