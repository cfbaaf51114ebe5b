"""The iptables host guard and per-session egress firewall: pure rule builders and their applier."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import threading
from typing import NamedTuple, Sequence

from ..egress import METADATA_ADDRESS, EgressPolicy

TAG_PREFIX = "bhub:"
CHAIN_PREFIX = "BHUB-"

# Docker jumps to DOCKER-USER first in FORWARD and never flushes it, so our rules survive its reloads.
DOCKER_USER = "DOCKER-USER"

_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,194}$")
# Linux caps interface names at 15 bytes (IFNAMSIZ - 1); the name is also a sysctl path component.
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,15}$")


class Rule(NamedTuple):
    """One iptables rule: its table, its chain and the match/target arguments."""

    table: str
    chain: str
    args: tuple[str, ...]


def tag_comment(tag: str) -> str:
    """The comment that marks our rules: "bhub:<network-or-container>"."""
    name = tag[len(TAG_PREFIX):] if tag.startswith(TAG_PREFIX) else tag
    # The comment is matched word for word in `iptables -S` output, so no spaces or quotes.
    if not _TAG_RE.match(name):
        raise ValueError(f"firewall tag {tag!r}: use letters, digits and _.:- (at most 195 characters)")
    return TAG_PREFIX + name


def _chain(kind: str, key: str) -> str:
    # iptables caps chain names at 28 characters; a hash keeps any tag within that.
    return f"{CHAIN_PREFIX}{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def guard_chain(bridge: str) -> str:
    """Name of the INPUT sub-chain that guards the host from one bridge."""
    return _chain("I", bridge)


def egress_chain(tag: str) -> str:
    """Name of the FORWARD sub-chain holding one session's egress policy."""
    return _chain("E", tag_comment(tag))


def _check_bridge(bridge: str) -> str:
    if not _IFNAME_RE.match(bridge):
        raise ValueError(f"bridge {bridge!r}: not a valid interface name (1-15 of A-Z a-z 0-9 _ -)")
    return bridge


def _ipv4(value: str, what: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an IP address") from None
    if address.version != 4:
        raise ValueError(f"{what} {value!r}: only IPv4 is supported")
    return str(address)


def _port(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{what} {value!r}: expected an integer 1-65535")
    return value


def route_localnet_sysctl(bridge: str) -> str:
    """The sysctl (scoped to one bridge) that lets the kernel route DNATed packets to 127.0.0.1."""
    return f"net.ipv4.conf.{_check_bridge(bridge)}.route_localnet"


def host_guard_rules(bridge: str, gateway: str, public_port: int, tag: str | None = None) -> list[Rule]:
    """Rules that let sessions on `bridge` reach only the proxy's public port on the host."""
    # The proxy listens on 127.0.0.1 only; sessions address it as <gateway>:<public_port> and the DNAT
    # carries them there. All else they send to the host (hub API, proxy API, databases, the Docker
    # API) is dropped, and so is new forwarded traffic from IPs without a session policy (fail closed).
    bridge, gateway = _check_bridge(bridge), _ipv4(gateway, "gateway")
    public_port = _port(public_port, "public port")
    comment = ("-m", "comment", "--comment", tag_comment(tag or bridge))
    chain = guard_chain(bridge)
    port = str(public_port)
    return [
        Rule("nat", "PREROUTING", ("-i", bridge, "-d", f"{gateway}/32", "-p", "tcp", "--dport", port,
                                   *comment, "-j", "DNAT", "--to-destination", f"127.0.0.1:{port}")),
        Rule("filter", chain, ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *comment, "-j", "ACCEPT")),
        # Only packets our DNAT rewrote: a forged packet addressed to 127.0.0.1 directly has no DNAT state.
        Rule("filter", chain, ("-d", "127.0.0.1/32", "-p", "tcp", "--dport", port,
                               "-m", "conntrack", "--ctstate", "DNAT", *comment, "-j", "ACCEPT")),
        Rule("filter", chain, (*comment, "-j", "DROP")),
        Rule("filter", "INPUT", ("-i", bridge, *comment, "-j", chain)),
        # Catches sessions whose egress rules are not (yet) installed; session rules sit before it.
        Rule("filter", DOCKER_USER, ("-i", bridge, "-m", "conntrack", "--ctstate", "NEW,INVALID",
                                     *comment, "-j", "DROP")),
    ]


def egress_rules(container_ip: str, policy: str | EgressPolicy, allowlist: Sequence[str] | None = None,
                 tag: str | None = None) -> list[Rule]:
    """Rules for one session's outbound (forwarded) traffic; the metadata address is always dropped."""
    container_ip = _ipv4(container_ip, "container IP")
    if not isinstance(policy, EgressPolicy):
        policy = EgressPolicy.parse(policy, allowlist)
    elif allowlist:
        raise ValueError("pass the allowlist inside the EgressPolicy, not beside it")
    comment = ("-m", "comment", "--comment", tag_comment(tag or container_ip))
    chain = egress_chain(tag or container_ip)
    rules = [
        Rule("filter", chain, ("-d", f"{METADATA_ADDRESS}/32", *comment, "-j", "DROP")),
        # Replies to connections into the container (and to ones it was allowed to open) pass.
        Rule("filter", chain, ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *comment, "-j", "RETURN")),
    ]
    # "Allowed" is RETURN, not ACCEPT: Docker's own chains still apply, so icc=false and network
    # isolation keep holding for allowed traffic.
    if policy.mode == "open":
        rules.append(Rule("filter", chain, (*comment, "-j", "RETURN")))
    else:
        for entry in policy.allowlist:
            rules.append(Rule("filter", chain, ("-d", entry.network, "-p", "tcp", "--dport", str(entry.port),
                                                *comment, "-j", "RETURN")))
        rules.append(Rule("filter", chain, (*comment, "-j", "DROP")))
    # Goto, not jump: a RETURN in the chain then resumes FORWARD after DOCKER-USER, skipping the
    # network's fail-closed DROP that follows the session rules in DOCKER-USER.
    rules.append(Rule("filter", DOCKER_USER, ("-s", f"{container_ip}/32", *comment, "-g", chain)))
    return rules


class FirewallError(RuntimeError):
    """An iptables command failed."""


class FirewallUnavailable(FirewallError):
    """iptables cannot be used here: the binary is missing, we are not root, or Docker's chains are absent."""


_detected: list[str] = []  # detect_iptables' answer, once found (the variant does not change under a hub)


def detect_iptables(cached: bool = False) -> str:
    """Path of the iptables variant (nft or legacy) whose ruleset Docker manages.

    ``cached``: this process's earlier answer, if any (each session's egress step builds a Firewall;
    detecting costs up to three iptables runs, which all wait on the xtables lock in a burst).
    """
    # the cache stands while this process is root and the binary is still there (a stat, no iptables run)
    if cached and _detected and os.geteuid() == 0 and shutil.which(_detected[0]):
        return _detected[0]
    path = _detect_iptables()
    _detected[:] = [path]
    return path


def _detect_iptables() -> str:
    if os.geteuid() != 0:
        raise FirewallUnavailable("iptables needs root (CAP_NET_ADMIN); run the hub as root to firewall sessions")
    # Both variants may be installed, but only the one Docker wrote to has FORWARD -> DOCKER-USER;
    # rules written with the other one would sit in a ruleset Docker's packets never see.
    found = [p for p in (shutil.which(n) for n in ("iptables-nft", "iptables-legacy", "iptables")) if p]
    if not found:
        raise FirewallUnavailable("no iptables binary found on PATH (install the iptables package)")
    for path in found:
        try:
            out = subprocess.run([path, "-w", "5", "-t", "filter", "-S", "FORWARD"], capture_output=True,
                                 text=True, timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and f"-j {DOCKER_USER}" in out.stdout:
            return path
    raise FirewallUnavailable(
        f"none of {', '.join(found)} shows Docker's {DOCKER_USER} chain: is dockerd running with iptables enabled?")


class Firewall:
    """Applies the rule builders with iptables; every method is idempotent."""

    TABLES = ("filter", "nat")

    def __init__(self, binary: str | None = None, timeout: float = 15.0):
        if binary is None:
            binary = detect_iptables(cached=True)
        elif shutil.which(binary) is None:
            raise FirewallUnavailable(f"iptables binary {binary!r} not found")
        self.binary = shutil.which(binary) or binary
        # iptables-nft pairs with iptables-nft-restore, iptables-legacy with iptables-legacy-restore.
        self.restore = shutil.which(os.path.basename(self.binary) + "-restore")
        if self.restore is None:
            raise FirewallUnavailable(f"{self.binary}-restore not found (it ships with iptables)")
        self.timeout = timeout
        self._lock = threading.Lock()

    @property
    def backend(self) -> str:
        """"nf_tables" or "legacy", as `iptables --version` reports it."""
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                             timeout=self.timeout).stdout
        return "nf_tables" if "nf_tables" in out else "legacy"

    def _run(self, *args: str, check: bool = True, stdin: str | None = None,
             binary: str | None = None) -> subprocess.CompletedProcess:
        argv = [binary or self.binary, "-w", "5", *args]
        try:
            out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise FirewallError(f"{shlex.join(argv)} timed out after {self.timeout}s") from None
        except OSError as e:
            raise FirewallUnavailable(f"cannot run {argv[0]}: {e}") from None
        if check and out.returncode != 0:
            if "Permission denied" in out.stderr or "must be root" in out.stderr:
                raise FirewallUnavailable(f"{shlex.join(argv)}: {out.stderr.strip()} (needs root)")
            raise FirewallError(f"{shlex.join(argv)} failed: {out.stderr.strip()}")
        return out

    def exists(self, rule: Rule) -> bool:
        """Whether exactly this rule is installed (`iptables -C`)."""
        return self._run("-t", rule.table, "-C", rule.chain, *rule.args, check=False).returncode == 0

    def list_rules(self, table: str = "filter") -> list[str]:
        """`iptables -S` lines of one table."""
        return self._run("-t", table, "-S").stdout.splitlines()

    def apply(self, rules: Sequence[Rule]) -> None:
        """Install rules: our own chains are rewritten atomically, hooks into shared chains added once."""
        with self._lock:
            for table in self.TABLES:
                owned: dict[str, list[Rule]] = {}
                hooks: list[Rule] = []
                for rule in (r for r in rules if r.table == table):
                    if rule.chain.startswith(CHAIN_PREFIX):
                        owned.setdefault(rule.chain, []).append(rule)
                    else:
                        hooks.append(rule)
                if owned:
                    # One iptables-restore transaction: a chain is never seen half-written (open).
                    lines = [f"*{table}"]
                    lines += [f":{chain} - [0:0]" for chain in owned]
                    lines += [f"-F {chain}" for chain in owned]
                    lines += [shlex.join(["-A", r.chain, *r.args]) for r in sum(owned.values(), [])]
                    lines.append("COMMIT")
                    self._run("--noflush", stdin="\n".join(lines) + "\n", binary=self.restore)
                for rule in hooks:
                    if not self.exists(rule):  # check before insert: no duplicates on re-apply
                        self._run("-t", table, "-I", rule.chain, str(self._position(rule)), *rule.args)

    def _position(self, rule: Rule) -> int:
        if rule.chain == DOCKER_USER and "-g" not in rule.args:
            # A network's fail-closed rule goes last (before Docker's RETURN) so that session rules,
            # inserted at the top, always come before it, whatever the order of installation.
            listed = [line for line in self._run("-t", rule.table, "-S", rule.chain).stdout.splitlines()
                      if line.startswith("-A ")]
            if listed and listed[-1].split() == ["-A", DOCKER_USER, "-j", "RETURN"]:
                return len(listed)
            return len(listed) + 1
        return 1

    def remove(self, tag: str, chains: Sequence[str] = ()) -> None:
        """Delete every rule carrying the tag's comment, then our chains the tag used."""
        comment = tag_comment(tag)
        with self._lock:
            for table in self.TABLES:
                targets = {c for c in chains if table == "filter"}
                for line in self.list_rules(table):
                    words = shlex.split(line)
                    if words[:1] != ["-A"] or not _has_comment(words, comment):
                        continue
                    chain = words[1]
                    if chain.startswith(CHAIN_PREFIX):
                        targets.add(chain)  # flushed below
                        continue
                    for flag in ("-j", "-g"):
                        if flag in words and words[words.index(flag) + 1].startswith(CHAIN_PREFIX):
                            targets.add(words[words.index(flag) + 1])
                    self._run("-t", table, "-D", *words[1:], check=False)
                existing = {line.split()[1] for line in self.list_rules(table) if line.startswith("-N ")}
                for chain in sorted(targets & existing):
                    self._run("-t", table, "-F", chain)
                    self._run("-t", table, "-X", chain, check=False)  # still referenced: leave it empty

    def install_host_guard(self, bridge: str, gateway: str, public_port: int, tag: str | None = None) -> None:
        """Firewall the host from a session bridge, leaving only the proxy's public port reachable."""
        rules = host_guard_rules(bridge, gateway, public_port, tag)
        self._set_sysctl(route_localnet_sysctl(bridge), "1")
        self.apply(rules)

    def remove_host_guard(self, bridge: str, tag: str | None = None) -> None:
        """Undo install_host_guard for a bridge (safe to call when nothing is installed)."""
        self.remove(tag or bridge, [guard_chain(_check_bridge(bridge))])
        if os.path.exists(_sysctl_path(route_localnet_sysctl(bridge))):
            self._set_sysctl(route_localnet_sysctl(bridge), "0")

    def allow_session(self, container_ip: str, policy: str | EgressPolicy,
                      allowlist: Sequence[str] | None = None, tag: str | None = None) -> None:
        """Install (or replace) one session's egress policy, keyed by its tag.

        Two iptables runs, whatever was there: one listing of DOCKER-USER, then one iptables-restore
        transaction that rewrites the session's chain, drops the tag's earlier hooks (the container may
        come back with a new IP under the same tag) and inserts its hook. In a burst of spawns every
        run waits on the xtables lock, so the count of runs is what a burst pays.
        """
        tag = tag or container_ip
        rules = egress_rules(container_ip, policy, allowlist, tag)
        comment = tag_comment(tag)
        # egress_rules are all in the filter table: the session's chain, and its one hook in DOCKER-USER
        owned = [r for r in rules if r.chain.startswith(CHAIN_PREFIX)]
        hooks = [r for r in rules if not r.chain.startswith(CHAIN_PREFIX)]
        with self._lock:
            earlier = [words[1:] for words in map(shlex.split, self._run("-t", "filter", "-S", DOCKER_USER)
                                                  .stdout.splitlines())
                       if words[:1] == ["-A"] and _has_comment(words, comment)]
            chains = dict.fromkeys(r.chain for r in owned)
            lines = ["*filter", *(f":{chain} - [0:0]" for chain in chains), *(f"-F {chain}" for chain in chains),
                     *(shlex.join(["-A", r.chain, *r.args]) for r in owned),
                     *(shlex.join(["-D", *words]) for words in earlier),
                     # at the top: before the network's fail-closed rule, whatever the order of installation
                     *(shlex.join(["-I", r.chain, "1", *r.args]) for r in hooks), "COMMIT"]
            self._run("--noflush", stdin="\n".join(lines) + "\n", binary=self.restore)

    def remove_session(self, tag: str) -> None:
        """Remove one session's egress rules (safe to call when nothing is installed)."""
        self.remove(tag, [egress_chain(tag)])

    def _set_sysctl(self, name: str, value: str) -> None:
        path = _sysctl_path(name)
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise FirewallError(f"cannot set {name}={value}: {e}") from None


def host_guard_intact(bridge: str) -> bool:
    """Whether ``bridge`` still routes the guard's DNAT to 127.0.0.1 (a bridge the engine made anew, as
    after a restart, comes up with route_localnet off, and sessions on it could not reach the hub)."""
    try:
        with open(_sysctl_path(route_localnet_sysctl(bridge))) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def _has_comment(words: list[str], comment: str) -> bool:
    return any(words[i] == "--comment" and words[i + 1] == comment for i in range(len(words) - 1))
