"""Run many real `backend.ai` commands quickly: import the CLI once, fork a fresh process per command.

Run with the client's own Python (.venv-bai). Each request is one JSON line on stdin
(``{"args": [...], "env": {...}, "cwd": "...", "input": "..."}``); each answer one JSON line on
stdout (``{"code": N, "out": "stdout and stderr"}``). A command runs in its own forked child with
its own environment, working directory, stdin and output, through the same ``main`` the
``backend.ai`` script calls, so it behaves as that command would: only the ~2 s import is shared.
"""

import io
import json
import os
import signal
import sys
import tempfile
import time
import traceback

from ai.backend.cli.__main__ import main  # what the `backend.ai` entry point runs

TIMEOUT = 60.0


def _child(req: dict, inp: int, out: int) -> None:
    code = 1
    try:
        os.chdir(req["cwd"])
        os.environ.clear()
        os.environ.update(req["env"])
        os.dup2(inp, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
        sys.argv = ["backend.ai", *req["args"]]
        main()
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else int(e.code) if isinstance(e.code, int) else 1
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:
                pass
        os._exit(code)


def run(req: dict) -> dict:
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out:
        inp.write(req.get("input", "").encode())
        inp.flush()
        inp.seek(0)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(req, inp.fileno(), out.fileno())
        deadline = time.monotonic() + TIMEOUT
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = 124
                break
            time.sleep(0.01)
        out.seek(0)
        return {"code": code, "out": out.read().decode(errors="replace")}


if __name__ == "__main__":
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
        sys.stdout.flush()
