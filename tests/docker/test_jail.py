"""The jail on a real engine: what a user inside a jailed session container can and cannot do."""

import json
import platform
import uuid

import pytest

from backendai_hub.spawner.jail import JailSettings, jail_create_kwargs, jail_host_config
from tests.docker.conftest import IMAGE

# every test here needs the engine: fail in CI, skip only on a developer's bare pytest
pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_available")]

MiB = 1 << 20
SHARED = JailSettings(tmp_size="16m", scratch_size="64m", pids_limit=128)

# (x86_64, aarch64) numbers, and arguments that are harmless should the call get through
SYSCALLS = {
    "mount": ((165, 40), (0, 0, 0, 0, 0)),
    "umount2": ((166, 39), (0, 0)),
    "unshare": ((272, 97), (0x10000000,)),  # CLONE_NEWUSER: needs no capability, only seccomp stops it
    "setns": ((308, 268), (-1, 0)),
    "keyctl": ((250, 219), (0, -3, 0)),  # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": ((248, 217), (0, 0, 0, 0, 0)),
    "request_key": ((249, 218), (0, 0, 0, 0)),
    "bpf": ((321, 280), (0, 0, 0)),
    "ptrace": ((101, 117), (0, 0, 0, 0)),  # PTRACE_TRACEME: succeeds for anyone without seccomp
    "process_vm_readv": ((310, 270), ("self", 0, 0, 0, 0, 0)),
    "perf_event_open": ((298, 241), (0, 0, -1, -1, 0)),
    "userfaultfd": ((323, 282), (0,)),
    "open_by_handle_at": ((304, 265), (-1, 0, 0)),
    "name_to_handle_at": ((303, 264), (-100, 0, 0, 0, 0)),
    "init_module": ((175, 105), (0, 0, 0)),
    "finit_module": ((313, 273), (-1, 0, 0)),
    "delete_module": ((176, 106), (0, 0)),
    "kexec_load": ((246, 104), (0, 0, 0, 0)),
    "pivot_root": ((155, 41), (0, 0)),
    "chroot": ((161, 51), (0,)),
    "swapoff": ((168, 225), (0,)),
    "syslog": ((103, 116), (10, 0, 0)),  # SYSLOG_ACTION_SIZE_BUFFER
    "acct": ((163, 89), (0,)),
    "clock_settime": ((227, 112), (0, 0)),
    "adjtimex": ((159, 171), (0,)),
    "clock_adjtime": ((305, 266), (0, 0)),
    "modify_ldt": ((154, None), (0, 0, 0)),  # x86 only: read the LDT
    "quotactl": ((179, 60), (0, 0, 0, 0)),
    "vhangup": ((153, 58), ()),
    "io_uring_setup": ((425, 425), (1, 0)),
    "personality(ADDR_NO_RANDOMIZE)": ((135, 92), (0x0040000,)),
    "clone(CLONE_NEWUSER)": ((56, 220), (0x10000000 | 17, 0, 0, 0, 0)),  # | SIGCHLD
    "clone3": ((435, 435), (0, 0)),
}
# denied by us, but let through by Docker's default profile to a process without capabilities
STRICTER_THAN_DOCKER = {"ptrace", "adjtimex", "clock_adjtime"}

PROBE = """
import ctypes, json, os, sys
calls = json.loads(sys.argv[1]); arch = 0 if sys.argv[2] == "x86_64" else 1
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nrs_personality = (135, 92)
out = {}
for name, (nrs, args) in calls.items():
    if nrs[arch] is None:
        continue
    args = [os.getpid() if a == "self" else a for a in args]
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nrs[arch]), *[ctypes.c_long(a) for a in args])
    if ret == 0 and name.startswith("clone"):
        os._exit(0)  # the child of a clone that got through
    if ret > 0 and name.startswith("clone"):
        os.waitpid(ret, 0)
    out[name] = [ret, ctypes.get_errno()]
ctypes.set_errno(0)
out["personality(query)"] = [libc.syscall(ctypes.c_long(nrs_personality[arch]), ctypes.c_long(0xFFFFFFFF)),
                             ctypes.get_errno()]
print(json.dumps(out))
"""

JUPYTER = """
import subprocess, sys, time, urllib.request
server = subprocess.Popen([sys.executable, "-m", "jupyter", "server", "--ServerApp.ip=127.0.0.1",
                           "--ServerApp.port=18888", "--ServerApp.port_retries=0", "--ServerApp.token=t0k",
                           "--no-browser"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
deadline, status = time.monotonic() + 30, None
try:
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen("http://127.0.0.1:18888/api/status?token=t0k", timeout=2) as r:
                status = r.status; break
        except OSError:
            time.sleep(0.3)
finally:
    server.terminate()
    try:
        _, err = server.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill(); _, err = server.communicate()
print("STATUS", status)
if status != 200:
    print(err.decode(errors="replace")[-3000:])
"""

PTY = """
import os, pty
pid, fd = pty.fork()
if pid == 0:
    os.execvp("bash", ["bash", "-c", "echo pty-$((40+2))"])
out = b""
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
print(out.decode().strip())
"""

FORK_BOMB = """
import os
r, w = os.pipe(); n = 0
while n < 10000:
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        os.close(w); os.read(r, 1); os._exit(0)
    n += 1
os.close(w)
for _ in range(n):
    os.wait()
print("FORKED", n, "AND SURVIVED")
"""

MEMORY_HOG = """
chunks = []
for i in range(1, 65):
    chunks.append(bytearray(8 << 20))  # zero-filled, so every page is touched
    print("ALLOCATED", i * 8, flush=True)
print("SURVIVED")
"""

WHEEL = """
import os, zipfile
path = os.path.expanduser("~/hello-0.1-py3-none-any.whl")
with zipfile.ZipFile(path, "w") as z:
    z.writestr("hello/__init__.py", "X = 42\\n")
    z.writestr("hello-0.1.dist-info/METADATA", "Metadata-Version: 2.1\\nName: hello\\nVersion: 0.1\\n")
    z.writestr("hello-0.1.dist-info/WHEEL",
               "Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr("hello-0.1.dist-info/RECORD", "")
print(path)
"""


def _start(client, command, settings=SHARED, **limits):
    """Start a jailed container exactly as the builders describe it, off every network."""
    kwargs = {**jail_create_kwargs(settings), **jail_host_config(settings, **limits)}
    return client.containers.run(IMAGE, command, detach=True, network_mode="none",
                                 name=f"bah-jail-test-{uuid.uuid4().hex[:10]}",
                                 labels={"backendai-hub.test": "jail"}, **kwargs)


def _run_to_end(client, command, timeout=60, settings=SHARED, **limits):
    """Run a jailed container to its end; return (exit code, output, State), always removing it."""
    container = _start(client, command, settings, **limits)
    try:
        code = container.wait(timeout=timeout)["StatusCode"]
        container.reload()
        return code, container.logs().decode(errors="replace"), container.attrs["State"]
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def jail(client):
    """One long-lived jailed session (1 cpu slot pinned to cpu 0, 512 MiB) that tests exec into."""
    container = _start(client, ["sleep", "infinity"], cpu=1, mem_bytes=512 * MiB, cpuset=[0])
    try:
        yield container
    finally:
        container.remove(force=True)


def sh(container, script, timeout=45):
    """Run a bash script inside the session as its user; return (exit code, output)."""
    code, out = container.exec_run(["timeout", str(timeout), "bash", "-c", script])
    return code, out.decode(errors="replace")


def py(container, source, *args, timeout=45):
    code, out = container.exec_run(["timeout", str(timeout), "python3", "-c", source, *args])
    return code, out.decode(errors="replace")


def _status(text):
    return {k: v.strip() for k, v in (line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)}


def test_session_process_is_unprivileged_filtered_and_cannot_gain_privileges(client):
    # the container's own main process, as jupyterhub-singleuser would be
    code, out, _ = _run_to_end(client, ["bash", "-c", "id -u; id -g; cat /proc/self/status"])
    assert code == 0, out
    uid, gid, status = out.split("\n", 2)
    assert (uid, gid) == ("1000", "1000")
    fields = _status(status)
    assert fields["Seccomp"] == "2"
    assert fields["NoNewPrivs"] == "1"
    for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
        assert fields[cap] == "0000000000000000", (cap, fields[cap])


def test_exec_into_the_session_gets_the_same_jail(jail):
    code, out = sh(jail, "id -u; cat /proc/self/status")
    assert code == 0, out
    uid, status = out.split("\n", 1)
    fields = _status(status)
    assert uid == "1000"
    assert (fields["Seccomp"], fields["NoNewPrivs"], fields["CapEff"]) == ("2", "1", "0000000000000000")


def _probe(container):
    machine = platform.machine()
    assert machine in ("x86_64", "aarch64"), f"no syscall table for {machine}"
    code, out = py(container, PROBE, json.dumps(SYSCALLS), machine)
    assert code == 0, out
    return {name: tuple(v) for name, v in json.loads(out.strip().splitlines()[-1]).items()}


def test_escape_and_snooping_syscalls_are_denied(jail):
    results = _probe(jail)
    EPERM, ENOSYS = 1, 38
    for name in results.keys() - {"personality(query)"}:
        ret, err = results[name]
        assert ret == -1 and err in (EPERM, ENOSYS), f"{name} got through: ret={ret} errno={err}"
    # calls that succeed for an unprivileged process unless seccomp stops them
    for name in ("unshare", "ptrace", "process_vm_readv", "name_to_handle_at", "clone(CLONE_NEWUSER)",
                 "personality(ADDR_NO_RANDOMIZE)", "io_uring_setup"):
        assert results[name] == (-1, EPERM), name
    assert results["clone3"] == (-1, ENOSYS), "glibc falls back to clone() only on ENOSYS"
    assert results["personality(query)"][0] >= 0, "the safe personality values stay allowed"


def test_profile_is_stricter_than_dockers_default(client):
    # control: the same unprivileged user under Docker's built-in profile
    settings = JailSettings(tmp_size="16m", scratch_size="64m", pids_limit=128)
    container = client.containers.run(
        IMAGE, ["sleep", "infinity"], detach=True, network_mode="none", cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"], user="1000:1000", read_only=True,
        tmpfs=jail_host_config(settings)["tmpfs"], name=f"bah-jail-test-{uuid.uuid4().hex[:10]}",
        labels={"backendai-hub.test": "jail"})
    try:
        results = _probe(container)
    finally:
        container.remove(force=True)
    let_through = {name for name, (ret, err) in results.items() if ret != -1 or err not in (1, 38)}
    assert STRICTER_THAN_DOCKER <= let_through, results


def test_shell_tools_cannot_unshare_or_mount(jail):
    code, out = sh(jail, "unshare -U true; echo rc=$?; unshare -r true; echo rc=$?")
    assert out.count("rc=1") == 2 and "Operation not permitted" in out, out
    code, out = sh(jail, "mount -t tmpfs x /tmp; echo rc=$?")
    assert "rc=0" not in out, out


def test_read_only_root_but_writable_scratch_and_tmp(jail):
    code, out = sh(jail, "for p in /etc/x /opt/x /x /usr/local/bin/x /var/tmp/x; do touch $p; done 2>&1")
    assert out.count("Read-only file system") == 5, out
    code, out = sh(jail, "cd && echo data > ~/f && echo tmp > /tmp/f && cat ~/f /tmp/f && pwd "
                         "&& printf '#!/bin/sh\\necho exec-ok\\n' > ~/run.sh && chmod +x ~/run.sh && ~/run.sh")
    assert code == 0 and out.split() == ["data", "tmp", "/home/work", "exec-ok"], out
    code, out = sh(jail, "grep -E ' (/tmp|/home/work) ' /proc/mounts")
    mounts = {line.split()[1]: set(line.split()[3].split(",")) for line in out.splitlines()}
    assert {"rw", "nosuid", "nodev", "size=65536k", "uid=1000", "gid=1000", "mode=755"} <= mounts["/home/work"]
    assert {"rw", "nosuid", "nodev", "size=16384k"} <= mounts["/tmp"]
    assert "noexec" not in mounts["/home/work"] | mounts["/tmp"]


def test_tmp_is_bounded_by_tmp_size(jail):
    code, out = py(jail, """
import errno
written = 0
try:
    with open("/tmp/fill", "wb") as f:
        for _ in range(32):
            f.write(b"x" * (1 << 20)); f.flush(); written += 1
except OSError as e:
    print("ERRNO", errno.errorcode[e.errno], written)
finally:
    import os; os.remove("/tmp/fill")
""")
    assert "ERRNO ENOSPC" in out, out
    assert 8 <= int(out.split()[-1]) <= 16, out


def test_packages_install_to_scratch_not_to_the_image(jail):
    code, out = py(jail, WHEEL)
    assert code == 0, out
    wheel = out.strip()
    code, out = sh(jail, f"pip install --no-index {wheel} 2>&1")
    assert code != 0 and "Read-only file system" in out, out
    site = "~/.local/lib/python3.11/site-packages"
    code, out = sh(jail, f"pip install -q --no-index --target {site} {wheel} 2>&1 "
                         f"&& PYTHONPATH={site} python3 -c 'import hello; print(hello.X)'")
    assert code == 0 and out.strip().endswith("42"), out


def test_cpu_and_memory_limits_are_what_the_user_sees(jail):
    code, out = sh(jail, "nproc; python3 -c 'import os; print(len(os.sched_getaffinity(0)))'; "
                         "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; "
                         "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; "
                         "ulimit -n")
    lines = out.split("\n")
    assert lines[:2] == ["1", "1"], out  # cpuset [0]: one cpu slot visible
    assert lines[2].split()[0] == "100000", out  # 1 slot = 100ms per 100ms period (v1 quota or v2 cpu.max)
    assert lines[3] == str(512 * MiB), out
    assert lines[4] == "4096", out


def test_jupyter_python_shell_and_pip_work_under_the_profile(jail):
    code, out = sh(jail, "set -e; echo ok; jupyterhub-singleuser --version; python -m jupyter lab --version; "
                         "pip --version; if command -v git >/dev/null; then git --version; fi; "
                         "python3 -c 'import multiprocessing as m, threading; "
                         "print(sum(m.Pool(2).map(abs, [-1, -2])))'", timeout=60)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "ok" and lines[1].startswith("6.") and lines[2].startswith("4."), out
    assert any(line.startswith("pip ") for line in lines) and lines[-1] == "3", out
    code, out = py(jail, PTY)
    assert code == 0 and "pty-42" in out, out  # what a JupyterLab terminal (terminado) does


def test_jupyter_server_serves_on_loopback_inside_the_jail(jail):
    code, out = py(jail, JUPYTER, timeout=50)
    assert "STATUS 200" in out, out


def test_fork_bomb_stops_at_the_pids_limit(client):
    settings = JailSettings(pids_limit=64)
    code, out, _ = _run_to_end(client, ["python3", "-c", FORK_BOMB], timeout=60, settings=settings)
    assert code == 0 and "AND SURVIVED" in out, out
    forked = int(out.split("FORKED")[1].split()[0])
    assert 32 <= forked < 64, out  # tini and the bomb itself count against the 64


def test_memory_hog_is_oom_killed_at_the_limit(client):
    code, out, state = _run_to_end(client, ["python3", "-c", MEMORY_HOG], timeout=60, cpu=1, mem_bytes=128 * MiB)
    assert "SURVIVED" not in out, out
    assert code == 137, (code, out)  # tini reports its child's SIGKILL as 128 + 9
    assert state["OOMKilled"] is True, state
    reached = max(int(line.split()[1]) for line in out.splitlines() if line.startswith("ALLOCATED"))
    assert 64 <= reached < 128, out  # killed at the limit, not before it and never past it
