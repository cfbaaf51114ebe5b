"""The jail builders: seccomp profile, capabilities, read-only root, scratch mounts and limits."""

import itertools
import json
from decimal import Decimal

import pytest
from docker.types import HostConfig

from backendai_hub.session_user import SESSION_GID, SESSION_UID
from backendai_hub.spawner.jail import (
    ADDABLE_CAPS,
    JailSettings,
    cpuset_string,
    default_seccomp_path,
    jail_create_kwargs,
    jail_host_config,
    limits_host_config,
    load_seccomp,
)

GiB = 1 << 30
MiB = 1 << 20
CLONE_NEW_FLAGS = {  # every namespace flag clone() can carry (CLONE_NEWTIME only exists for clone3/unshare)
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
NEVER_ALLOWED = """mount umount umount2 unshare setns keyctl add_key request_key bpf ptrace
process_vm_readv process_vm_writev perf_event_open userfaultfd open_by_handle_at name_to_handle_at
init_module finit_module delete_module kexec_load kexec_file_load pivot_root chroot swapon swapoff
reboot syslog acct settimeofday clock_settime adjtimex clock_adjtime iopl ioperm lookup_dcookie
quotactl quotactl_fd vhangup fsopen fsmount fsconfig fspick move_mount open_tree mount_setattr
io_uring_setup io_uring_enter io_uring_register kcmp pidfd_getfd modify_ldt sethostname
setdomainname fanotify_init clone3""".split()
DANGEROUS_CAPS = ["ALL", "SYS_ADMIN", "CAP_SYS_ADMIN", "sys_module", "SYS_PTRACE", "SYS_RAWIO", "NET_ADMIN",
                  "NET_RAW", "DAC_READ_SEARCH", "DAC_OVERRIDE", "SYS_BOOT", "SYS_TIME", "MKNOD", "SETFCAP",
                  "SYS_CHROOT", "BPF", "PERFMON", "SETUID", "SETGID", "CHOWN", "FOWNER", "BOGUS"]


@pytest.fixture(scope="module")
def profile():
    return json.loads(default_seccomp_path().read_text())


# --- resource limits -------------------------------------------------------------------------

@pytest.mark.parametrize("cpu, mem, cpuset, expected", [
    (1, GiB, None, {"cpu_period": 100000, "cpu_quota": 100000, "mem_limit": GiB, "memswap_limit": GiB,
                    "oom_kill_disable": False}),
    (Decimal("0.5"), 256 * MiB, [0], {"cpu_period": 100000, "cpu_quota": 50000, "mem_limit": 256 * MiB,
                                      "memswap_limit": 256 * MiB, "oom_kill_disable": False,
                                      "cpuset_cpus": "0"}),
    # 0.29 * 100000 is 28999.999... in binary floating point: the slot count must be taken as decimal
    (0.29, 6 * MiB, [3, 1, 1, 0], {"cpu_period": 100000, "cpu_quota": 29000, "mem_limit": 6 * MiB,
                                   "memswap_limit": 6 * MiB, "oom_kill_disable": False,
                                   "cpuset_cpus": "0,1,3"}),
    ("1.5", None, None, {"cpu_period": 100000, "cpu_quota": 150000}),
    (16, None, (7, 6), {"cpu_period": 100000, "cpu_quota": 1600000, "cpuset_cpus": "6,7"}),
    (0.01, None, None, {"cpu_period": 100000, "cpu_quota": 1000}),
    (None, 8 * GiB, None, {"mem_limit": 8 * GiB, "memswap_limit": 8 * GiB, "oom_kill_disable": False}),
    (None, None, None, {}),
])
def test_limits_host_config(cpu, mem, cpuset, expected):
    assert limits_host_config(cpu, mem, cpuset) == expected


@pytest.mark.parametrize("cpu, mem, cpuset, field", [
    (0, None, None, "cpu"), (-1, None, None, "cpu"), (0.001, None, None, "cpu"),
    (float("nan"), None, None, "cpu"), (float("inf"), None, None, "cpu"), (True, None, None, "cpu"),
    (None, 0, None, "mem_bytes"), (None, 1024, None, "mem_bytes"), (None, 1.5e9, None, "mem_bytes"),
    (None, True, None, "mem_bytes"), (None, "1g", None, "mem_bytes"),
    (None, None, [], "cpuset"), (None, None, [-1], "cpuset"), (None, None, ["0"], "cpuset"),
    (None, None, [True], "cpuset"),
])
def test_limits_reject_bad_values_naming_the_field(cpu, mem, cpuset, field):
    with pytest.raises(ValueError, match=field):
        limits_host_config(cpu, mem, cpuset)


@pytest.mark.parametrize("cpus, text", [([0], "0"), ([1, 0], "0,1"), ([2, 2, 10, 1], "1,2,10"), ((5,), "5")])
def test_cpuset_string(cpus, text):
    assert cpuset_string(cpus) == text


# --- the jail host config --------------------------------------------------------------------

def test_default_host_config_is_the_full_jail():
    config = jail_host_config()
    assert config == {
        "privileged": False,
        "cap_drop": ["ALL"],
        "cap_add": [],
        "security_opt": ["no-new-privileges:true", "seccomp=" + load_seccomp()],
        "pids_limit": 512,
        "ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 4096}],
        "read_only": True,
        "tmpfs": {
            "/tmp": "rw,exec,nosuid,nodev,size=256m",
            "/home/work": "rw,exec,nosuid,nodev,size=1g,uid=1000,gid=1000,mode=0755",
        },
    }


def test_host_config_with_limits_and_runtime():
    settings = JailSettings(cap_add=("cap_ipc_lock", "IPC_LOCK"), runtime="runsc", pids_limit=64, nofile=1024,
                            tmp_size="64M", scratch_size="2g", uid=1001, gid=100)
    config = jail_host_config(settings, cpu=Decimal("2"), mem_bytes=4 * GiB, cpuset=[1, 0])
    assert config["cap_add"] == ["IPC_LOCK"]
    assert config["runtime"] == "runsc"
    assert config["pids_limit"] == 64
    assert config["ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 1024}]
    assert config["tmpfs"] == {"/tmp": "rw,exec,nosuid,nodev,size=64m",
                               "/home/work": "rw,exec,nosuid,nodev,size=2g,uid=1001,gid=100,mode=0755"}
    assert {k: config[k] for k in ("cpu_period", "cpu_quota", "cpuset_cpus", "mem_limit", "memswap_limit")} == {
        "cpu_period": 100000, "cpu_quota": 200000, "cpuset_cpus": "0,1", "mem_limit": 4 * GiB,
        "memswap_limit": 4 * GiB}


def test_docker_py_accepts_every_key():
    """The kwargs are exactly what docker-py's create_host_config takes, and map to the engine's fields."""
    config = jail_host_config(JailSettings(runtime="runsc", cap_add=("SYS_NICE",)), cpu=1.5, mem_bytes=GiB,
                              cpuset=[0, 1])
    engine = HostConfig(version="1.41", **config)
    assert engine["CapDrop"] == ["ALL"] and engine["CapAdd"] == ["SYS_NICE"]
    assert engine["ReadonlyRootfs"] is True and engine["PidsLimit"] == 512
    assert engine["Memory"] == engine["MemorySwap"] == GiB
    assert (engine["CpuQuota"], engine["CpuPeriod"], engine["CpusetCpus"]) == (150000, 100000, "0,1")
    assert engine["Runtime"] == "runsc" and not engine.get("Privileged")
    assert engine["SecurityOpt"][0] == "no-new-privileges:true"
    assert json.loads(engine["SecurityOpt"][1].removeprefix("seccomp="))["defaultAction"] == "SCMP_ACT_ERRNO"


def test_no_keyword_can_smuggle_privileges_in():
    with pytest.raises(TypeError):
        jail_host_config(privileged=True)


def test_scratch_can_give_way_to_a_persistent_home_volume():
    config = jail_host_config(JailSettings(scratch_size=None))
    assert list(config["tmpfs"]) == ["/tmp"]


def test_no_new_privileges_can_be_dropped_but_seccomp_cannot():
    config = jail_host_config(JailSettings(no_new_privileges=False))
    assert config["security_opt"] == ["seccomp=" + load_seccomp()]


SAFE_KEYS = {"privileged", "cap_drop", "cap_add", "security_opt", "pids_limit", "ulimits", "read_only", "tmpfs",
             "runtime", "cpu_period", "cpu_quota", "cpuset_cpus", "mem_limit", "memswap_limit",
             "oom_kill_disable"}


@pytest.mark.parametrize("caps", [c for n in range(len(ADDABLE_CAPS) + 1)
                                  for c in itertools.combinations(sorted(ADDABLE_CAPS), n)])
@pytest.mark.parametrize("runtime", [None, "runc", "runsc"])
@pytest.mark.parametrize("read_only, nnp", [(True, True), (False, False)])
def test_nothing_privileged_ever_slips_in(caps, runtime, read_only, nnp):
    config = jail_host_config(JailSettings(cap_add=caps, runtime=runtime, read_only_rootfs=read_only,
                                           no_new_privileges=nnp), cpu=1, mem_bytes=GiB, cpuset=[0])
    # no host namespaces, devices, binds or sysctls can come from the jail builder
    assert set(config) <= SAFE_KEYS
    assert config["privileged"] is False and config["cap_drop"] == ["ALL"]
    assert set(config["cap_add"]) <= set(ADDABLE_CAPS)
    assert not any(o.startswith(("seccomp=unconfined", "apparmor=unconfined", "label=disable", "seccomp:"))
                   for o in config["security_opt"])
    assert sum(o.startswith("seccomp=") for o in config["security_opt"]) == 1
    assert all("suid" not in opt.replace("nosuid", "") for opt in config["tmpfs"].values())
    assert config["memswap_limit"] == config["mem_limit"]


def test_create_kwargs_run_as_the_session_user_in_its_home():
    assert (SESSION_UID, SESSION_GID) == (1000, 1000)
    assert jail_create_kwargs() == {"user": "1000:1000", "working_dir": "/home/work"}
    assert jail_create_kwargs(JailSettings(uid=1234, gid=100)) == {"user": "1234:100", "working_dir": "/home/work"}


@pytest.mark.parametrize("cap", DANGEROUS_CAPS)
def test_dangerous_capabilities_are_refused(cap):
    with pytest.raises(ValueError, match="cap_add"):
        JailSettings(cap_add=(cap,))


@pytest.mark.parametrize("kwargs, field", [
    ({"seccomp_profile": "unconfined"}, "seccomp_profile"),
    ({"seccomp_profile": "default"}, "seccomp_profile"),
    ({"seccomp_profile": " Unconfined "}, "seccomp_profile"),
    ({"seccomp_profile": ""}, "seccomp_profile"),
    ({"uid": 0}, "uid"), ({"gid": 0}, "gid"), ({"uid": -5}, "uid"), ({"uid": True}, "uid"), ({"uid": "1000"}, "uid"),
    ({"pids_limit": 0}, "pids_limit"), ({"pids_limit": -1}, "pids_limit"), ({"nofile": 0}, "nofile"),
    ({"tmp_size": "lots"}, "tmp_size"), ({"tmp_size": "0m"}, "tmp_size"), ({"tmp_size": "1t"}, "tmp_size"),
    ({"tmp_size": "1g,exec"}, "tmp_size"), ({"scratch_size": "1g,suid"}, "scratch_size"),
    ({"runtime": "runc --root /"}, "runtime"), ({"runtime": ""}, "runtime"),
    ({"home": "/"}, "home"), ({"home": "work"}, "home"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        JailSettings(**kwargs)


# --- the seccomp profile ---------------------------------------------------------------------

def _allowing(profile, name):
    return [r for r in profile["syscalls"] if name in r["names"] and r["action"] == "SCMP_ACT_ALLOW"]


def test_profile_denies_by_default_on_native_arches_only(profile):
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert {a["architecture"] for a in profile["archMap"]} == {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"}
    assert all(not a["subArchitectures"] for a in profile["archMap"])
    assert profile["comment"], "the profile documents why it is stricter than Docker's"


@pytest.mark.parametrize("name", NEVER_ALLOWED)
def test_dangerous_syscalls_are_never_allowed(profile, name):
    assert _allowing(profile, name) == []


def test_clone_is_allowed_only_without_namespace_flags(profile):
    (rule,) = _allowing(profile, "clone")
    (arg,) = rule["args"]
    assert arg["index"] == 0 and arg["op"] == "SCMP_CMP_MASKED_EQ" and arg.get("valueTwo", 0) == 0
    for flag, bit in CLONE_NEW_FLAGS.items():
        assert arg["value"] & bit, f"{flag} slips through"
    assert "includes" not in rule and "excludes" not in rule


def test_clone3_fails_with_enosys_so_glibc_falls_back(profile):
    (rule,) = [r for r in profile["syscalls"] if "clone3" in r["names"]]
    assert rule["action"] == "SCMP_ACT_ERRNO" and rule["errnoRet"] == 38 and "includes" not in rule


def test_personality_only_for_dockers_safe_values(profile):
    rules = _allowing(profile, "personality")
    assert all(len(r["args"]) == 1 and r["args"][0]["op"] == "SCMP_CMP_EQ" for r in rules)
    assert {r["args"][0]["value"] for r in rules} == {0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF}


def test_socket_is_allowed_except_vsock(profile):
    (rule,) = _allowing(profile, "socket")
    assert rule["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_only_rules_with_conditions_are_the_documented_ones(profile):
    conditional = [r for r in profile["syscalls"] if set(r) - {"names", "action", "comment"}]
    names = sorted({n for r in conditional for n in r["names"]})
    assert names == ["clone", "clone3", "get_mempolicy", "mbind", "personality", "set_mempolicy", "socket"]
    (numa,) = [r for r in conditional if "mbind" in r["names"]]
    assert numa["includes"] == {"caps": ["CAP_SYS_NICE"]}


@pytest.mark.parametrize("name", """read write openat close execve exit_group futex mmap mprotect munmap brk
rt_sigaction rt_sigreturn epoll_pwait epoll_ctl poll select pipe2 wait4 kill getdents64 newfstatat statx
fstat ioctl fcntl bind listen accept4 connect sendto recvfrom getrandom set_robust_list rseq prlimit64
sched_getaffinity arch_prctl madvise memfd_create eventfd2 inotify_add_watch setsid dup3 vfork fork
faccessat2 close_range""".split())
def test_what_python_jupyter_and_a_shell_need_is_allowed(profile, name):
    (rule,) = _allowing(profile, name)
    assert "args" not in rule and "includes" not in rule


def test_allowlist_has_no_duplicates(profile):
    names = [n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r for n in r["names"]]
    assert len(names) == len(set(names))


def test_load_seccomp_is_compact_and_comment_free(profile):
    text = load_seccomp()
    assert "\n" not in text and '"comment"' not in text
    loaded = json.loads(text)
    assert loaded["syscalls"][0]["names"] == profile["syscalls"][0]["names"]
    assert len(loaded["syscalls"]) == len(profile["syscalls"])


def test_load_seccomp_reads_a_given_file_and_refuses_allow_by_default(tmp_path):
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": []}))
    assert json.loads(load_seccomp(strict)) == {"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": []}
    config = jail_host_config(JailSettings(seccomp_profile=str(strict)))
    assert config["security_opt"][1] == "seccomp=" + load_seccomp(strict)
    lax = tmp_path / "lax.json"
    lax.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}))
    with pytest.raises(ValueError, match="defaultAction"):
        load_seccomp(lax)
