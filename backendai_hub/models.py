"""Tenancy model on our own SQLAlchemy metadata: domains, groups, users, keypairs, resource policies."""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use timezone-aware UTC")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRole(str, enum.Enum):
    superadmin = "superadmin"
    domain_admin = "domain-admin"
    user = "user"


class UserStatus(str, enum.Enum):
    active = "active"
    inactive = "inactive"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # store the values ("domain-admin"), not the member names, as portable VARCHAR + CHECK
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=32,
                values_callable=lambda e: [m.value for m in e])


class KeyPairResourcePolicy(Base):
    """Per-keypair limits: total slots, concurrent sessions, lifetime, idle timeouts, storage hosts."""
    __tablename__ = "keypair_resource_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    total_resource_slots: Mapped[dict] = mapped_column(JSON, default=dict)
    max_concurrent_sessions: Mapped[int | None] = mapped_column(Integer)
    max_session_lifetime: Mapped[int | None] = mapped_column(Integer)  # seconds
    idle_timeout: Mapped[int | None] = mapped_column(Integer)  # seconds
    idle_timeout_accelerator: Mapped[int | None] = mapped_column(Integer)  # seconds, sessions holding devices
    allowed_vfolder_hosts: Mapped[dict] = mapped_column(JSON, default=dict)  # host -> permissions
    # network egress of sessions: "none", "allowlist" (of host:port) or "open"
    egress: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    egress_allowlist: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UserResourcePolicy(Base):
    """Per-user storage limits."""

    __tablename__ = "user_resource_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    max_vfolder_count: Mapped[int | None] = mapped_column(Integer)
    max_quota_size: Mapped[int | None] = mapped_column(BigInteger)  # bytes, per folder
    max_quota_scope_size: Mapped[int | None] = mapped_column(BigInteger)  # bytes, all the user's folders
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GroupResourcePolicy(Base):
    """Per-group (project) storage limits."""

    __tablename__ = "group_resource_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    max_vfolder_count: Mapped[int | None] = mapped_column(Integer)
    max_quota_size: Mapped[int | None] = mapped_column(BigInteger)
    max_quota_scope_size: Mapped[int | None] = mapped_column(BigInteger)  # all the group's folders
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Domain(Base):
    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    total_resource_slots: Mapped[dict] = mapped_column(JSON, default=dict)
    allowed_images: Mapped[list] = mapped_column(JSON, default=list)  # empty: any image
    allowed_vfolder_hosts: Mapped[dict] = mapped_column(JSON, default=dict)  # host -> permissions
    # policy kind -> names the domain's admins may assign (superadmins assign any)
    allowed_resource_policies: Mapped[dict] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    # its sessions record the code they run (code_logs); a group's flag turns it on for that group too
    code_log: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    groups: Mapped[list[Group]] = relationship(back_populates="domain")
    users: Mapped[list[User]] = relationship(back_populates="domain")


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    # the primary key leads with the group: a user's groups (every admission) need their own index
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class Group(Base):
    """A project inside a domain; its name is unique within the domain."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_groups_domain_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    total_resource_slots: Mapped[dict] = mapped_column(JSON, default=dict)
    allowed_images: Mapped[list] = mapped_column(JSON, default=list)
    allowed_vfolder_hosts: Mapped[dict] = mapped_column(JSON, default=dict)  # host -> permissions
    resource_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("group_resource_policies.id", ondelete="RESTRICT"))
    code_log: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))  # see Domain
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    domain: Mapped[Domain] = relationship(back_populates="groups")
    resource_policy: Mapped[GroupResourcePolicy | None] = relationship()
    members: Mapped[list[User]] = relationship(secondary="group_members", back_populates="groups",
                                               order_by="User.username")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[UserRole] = mapped_column(_enum(UserRole, "user_role"), default=UserRole.user)
    status: Mapped[UserStatus] = mapped_column(_enum(UserStatus, "user_status"), default=UserStatus.active)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="RESTRICT"), index=True)
    resource_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_resource_policies.id", ondelete="RESTRICT"))
    # the keypair browser sessions are charged to (Backend.AI's main_access_key): chosen by admins,
    # the first one issued otherwise; no foreign key, as keypairs already reference their user
    main_access_key: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    domain: Mapped[Domain] = relationship(back_populates="users")
    resource_policy: Mapped[UserResourcePolicy | None] = relationship()
    groups: Mapped[list[Group]] = relationship(secondary="group_members", back_populates="members",
                                               order_by="Group.name")
    keypairs: Mapped[list[KeyPair]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                   passive_deletes=True, order_by="KeyPair.created_at")

    @property
    def main_keypair(self) -> KeyPair | None:
        """The keypair browser sessions are charged to (Backend.AI's main key), active or not; only
        admins choose it, so its policy is the one they meant for the user."""
        return next((k for k in self.keypairs if k.access_key == self.main_access_key), None)


class KeyPair(Base):
    """An API credential. The secret is stored encrypted (it must be recoverable to check HMACs)."""

    __tablename__ = "keypairs"

    access_key: Mapped[str] = mapped_column(String(20), primary_key=True)
    secret_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    resource_policy_id: Mapped[int] = mapped_column(
        ForeignKey("keypair_resource_policies.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # a web shell session's own keypair: the session it was issued to, which takes it along when it ends
    # (admission's release, whoever releases). No foreign key: sessions already refer to keypairs.
    session_id: Mapped[int | None] = mapped_column(Integer, index=True)

    user: Mapped[User] = relationship(back_populates="keypairs")
    resource_policy: Mapped[KeyPairResourcePolicy] = relationship()


class LoginThrottle(Base):
    """Failed sign-ins per user or client address, and the lock they lead to (visible to admins)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)  # "user:alice" / "addr:127.0.0.1"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionStatus(str, enum.Enum):
    queued = "queued"  # fits the policy, waits for free host capacity; holds nothing
    starting = "starting"  # admitted: holds its slots while the container starts
    running = "running"
    terminated = "terminated"


LIVE_STATUSES = (SessionStatus.starting, SessionStatus.running)


class KernelSession(Base):
    """One hub server (default or named) as admitted against the policies; holds its slots while live."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    server_name: Mapped[str] = mapped_column(String(255), default="")
    access_key: Mapped[str] = mapped_column(ForeignKey("keypairs.access_key", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    image: Mapped[str] = mapped_column(String(255))
    app: Mapped[str] = mapped_column(String(64), default="jupyterlab")
    slots: Mapped[dict] = mapped_column(JSON, default=dict)
    allocation: Mapped[dict] = mapped_column(JSON, default=dict)  # {"cpuset": [...], "devices": {...}}
    status: Mapped[SessionStatus] = mapped_column(_enum(SessionStatus, "session_status"), index=True)
    status_info: Mapped[str] = mapped_column(Text, default="")
    container_id: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    terminated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    group: Mapped[Group] = relationship()
    keypair: Mapped[KeyPair] = relationship()


USAGE_LEVELS = ("keypair", "group", "domain", "host")
HOST_USAGE = ("host", "")  # the primary key of the host's row


class LevelUsage(Base):
    """What the live sessions hold at one level: a keypair, group or domain, or the host.

    ``admission`` keeps it in the transaction of every change of a session's live status, under the
    admission lock, so that admitting reads four rows instead of summing every live session;
    ``admission.repair_usage`` recounts it from the sessions.
    """

    __tablename__ = "level_usage"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # one of USAGE_LEVELS
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # access key, group id, domain id; "" (host)
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    slots: Mapped[dict] = mapped_column(JSON, default=dict)  # slot -> exact decimal string, as sessions.slots
    # the host only: {"devices": {slot: {device id: amount}}, "cpus": {cpu: sessions pinned to it}};
    # "devices" has the shape of sessions.allocation["devices"], amounts summed
    held: Mapped[dict] = mapped_column(JSON, default=dict)


# -- virtual folders (appended; see backendai_hub/vfolders/) ------------------------------------

class VFolderUsageMode(str, enum.Enum):
    general = "general"
    data = "data"
    model = "model"


class VFolderPermission(str, enum.Enum):
    """ro: read; rw: read and write (create, overwrite, rename); wd: rw and delete files."""

    ro = "ro"
    rw = "rw"
    wd = "wd"


class VFolderStatus(str, enum.Enum):
    ready = "ready"
    cloning = "cloning"
    trashed = "delete-pending"  # in the trash: recoverable until purged


class InvitationState(str, enum.Enum):
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"
    canceled = "canceled"


class VFolder(Base):
    """A virtual folder owned by a user or a group, stored on one storage host.

    ``owner_key`` ("u:<user id>" / "g:<group id>") and ``live_name`` (the name while not in the
    trash, NULL in it) make names unique per owner among live folders with a plain constraint.
    """

    __tablename__ = "vfolders"
    __table_args__ = (UniqueConstraint("owner_key", "live_name", name="uq_vfolders_owner_live_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    name: Mapped[str] = mapped_column(String(64))
    live_name: Mapped[str | None] = mapped_column(String(64))
    owner_key: Mapped[str] = mapped_column(String(24), index=True)
    host: Mapped[str] = mapped_column(String(64))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    usage_mode: Mapped[VFolderUsageMode] = mapped_column(_enum(VFolderUsageMode, "vfolder_usage_mode"),
                                                         default=VFolderUsageMode.general)
    # what group members get (group folders); the owner of a user folder always has full rights
    permission: Mapped[VFolderPermission] = mapped_column(_enum(VFolderPermission, "vfolder_permission"),
                                                          default=VFolderPermission.rw)
    cloneable: Mapped[bool] = mapped_column(Boolean, default=False)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)  # read-only for the whole domain
    quota: Mapped[int | None] = mapped_column(BigInteger)  # bytes; None: unlimited
    status: Mapped[VFolderStatus] = mapped_column(_enum(VFolderStatus, "vfolder_status"),
                                                  default=VFolderStatus.ready)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    trashed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    domain: Mapped[Domain] = relationship()
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
    group: Mapped[Group | None] = relationship()
    grants: Mapped[list[VFolderGrant]] = relationship(back_populates="vfolder", cascade="all, delete-orphan",
                                                      passive_deletes=True)


class VFolderGrant(Base):
    """A user's permission on a folder: an accepted invitation, or a group folder's per-user override."""

    __tablename__ = "vfolder_grants"

    vfolder_id: Mapped[str] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    permission: Mapped[VFolderPermission] = mapped_column(_enum(VFolderPermission, "vfolder_permission"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    vfolder: Mapped[VFolder] = relationship(back_populates="grants")
    user: Mapped[User] = relationship()


class VFolderInvitation(Base):
    """An invitation to a user folder, by email, with the permission the invitee would get."""

    __tablename__ = "vfolder_invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex
    vfolder_id: Mapped[str] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"), index=True)
    inviter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    invitee_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    permission: Mapped[VFolderPermission] = mapped_column(_enum(VFolderPermission, "vfolder_permission"))
    state: Mapped[InvitationState] = mapped_column(_enum(InvitationState, "vfolder_invitation_state"),
                                                   default=InvitationState.pending)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    vfolder: Mapped[VFolder] = relationship()
    inviter: Mapped[User] = relationship(foreign_keys=[inviter_id])
    invitee: Mapped[User] = relationship(foreign_keys=[invitee_id])


class VFolderMount(Base):
    """A folder mounted into a session; a folder mounted in a live session cannot be deleted."""

    __tablename__ = "vfolder_mounts"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    vfolder_id: Mapped[str] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"), primary_key=True,
                                            index=True)
    target: Mapped[str] = mapped_column(String(255))
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)

    session: Mapped[KernelSession] = relationship()


# -- accountability (appended; see backendai_hub/audit.py) -------------------------------------

class AuditStatus(str, enum.Enum):
    success = "success"  # the change was made (committed with this row)
    rejected = "rejected"  # refused by a rule (input, permission, policy, conflict): nothing changed
    error = "error"  # failed unexpectedly and was rolled back: nothing changed


class AuditLog(Base):
    """One recorded action. Rows form a hash chain: ``hash`` covers the row and ``prev_hash``, the
    ``hash`` of the row at ``seq - 1``; ``audit.verify`` walks it (see ``audit.py``)."""

    __tablename__ = "audit_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # chain position: one writer per value
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(64), index=True)  # the user who acted (None: the system)
    credential: Mapped[str] = mapped_column(String(64), default="")  # "keypair:AKIA…", "token", "password", "local"
    acted_as: Mapped[str | None] = mapped_column(String(64))  # the user acted for, when not the actor
    domain: Mapped[str | None] = mapped_column(String(64), index=True)  # the actor's or the entity's domain
    client_address: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # rest, backendai, cli, fixtures, hub, service
    entity_type: Mapped[str] = mapped_column(String(32), index=True)
    entity_id: Mapped[str | None] = mapped_column(String(255))
    operation: Mapped[str] = mapped_column(String(32), index=True)  # create, update, delete, sign-in, ...
    action: Mapped[str] = mapped_column(String(128))  # what exactly: "POST api/v1/users", "user create"
    request_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[AuditStatus] = mapped_column(_enum(AuditStatus, "audit_status"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    duration_us: Mapped[int] = mapped_column(BigInteger, default=0)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class CodeLogKind(str, enum.Enum):
    cell = "cell"  # one kernel execute_request and its reply
    terminal = "terminal"  # one line entered in a terminal
    gap = "gap"  # the service noticed a logged session stopped shipping: records may be missing


class CodeLogStatus(str, enum.Enum):
    ok = "ok"
    error = "error"
    aborted = "aborted"
    unknown = "unknown"  # no reply seen (the kernel died, the server stopped, a terminal line)


class CodeLog(Base):
    """One execution recorded in a session whose domain or group has ``code_log`` on.

    Captured by the session's own server (``captured_by``): as trustworthy as that server, which its
    user controls. ``(session_id, record_id)`` is unique: redelivered batches are stored once.
    """

    __tablename__ = "code_logs"
    __table_args__ = (UniqueConstraint("session_id", "record_id", name="uq_code_logs_session_record"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    username: Mapped[str] = mapped_column(String(64), index=True)
    domain: Mapped[str] = mapped_column(String(64), index=True)
    group: Mapped[str] = mapped_column(String(64))
    server_name: Mapped[str] = mapped_column(String(255), default="")
    session_id: Mapped[int] = mapped_column(Integer, index=True)  # sessions.id (no FK: logs outlive sessions)
    record_id: Mapped[str] = mapped_column(String(128))  # the capturer's id of the record
    kind: Mapped[CodeLogKind] = mapped_column(_enum(CodeLogKind, "code_log_kind"))
    status: Mapped[CodeLogStatus] = mapped_column(_enum(CodeLogStatus, "code_log_status"))
    kernel_id: Mapped[str | None] = mapped_column(String(128))
    msg_id: Mapped[str | None] = mapped_column(String(128))
    execution_count: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    code: Mapped[str] = mapped_column(Text, default="")  # at most CODE_LOG_MAX_CODE characters
    code_size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes of the full code (UTF-8)
    code_sha256: Mapped[str] = mapped_column(String(64), default="")  # of the full code
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    captured_by: Mapped[str] = mapped_column(String(255), default="")


class CodeLogStream(Base):
    """When a logged session last shipped (a batch or a heartbeat), to notice when it stops."""

    __tablename__ = "code_log_streams"

    session_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    gap_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set while a gap row is open
    captured_by: Mapped[str] = mapped_column(String(255), default="")
