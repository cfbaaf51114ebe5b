"""The usage tables: one row per (session, sample time) of cumulative counters, and hourly rollups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, UTCDateTime


class UsageSample(Base):
    """What a session's container had used, cumulatively, at ``sampled_at``.

    Counters are cumulative since the container started (the cgroup's), so a missed sample loses
    nothing: the next one carries the whole delta. The primary key makes a sample idempotent.
    """

    __tablename__ = "usage_samples"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # cumulative CPU time
    mem_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # in use now
    mem_peak: Mapped[int] = mapped_column(BigInteger, default=0)  # the cgroup's high-water mark
    disk_read: Mapped[int] = mapped_column(BigInteger, default=0)  # cumulative bytes
    disk_write: Mapped[int] = mapped_column(BigInteger, default=0)
    net_rx: Mapped[int] = mapped_column(BigInteger, default=0)
    net_tx: Mapped[int] = mapped_column(BigInteger, default=0)
    accel_util: Mapped[float] = mapped_column(Float, default=0.0)  # sum of held devices' utilisation, percent
    accel_mem: Mapped[int] = mapped_column(BigInteger, default=0)  # sum of held devices' memory in use
    final: Mapped[bool] = mapped_column(Boolean, default=False)  # written at stop: nothing follows


class _Rollup:
    """The columns of a rollup row: one session's usage within one UTC hour or day, as resource-seconds.

    Maintained on every sample (the delta since the previous one, split exactly at hour edges), so a
    query over a month reads hours or days, not samples. Who and where are copied from the session,
    so a query needs no join.
    """

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[int] = mapped_column(Integer)
    domain_id: Mapped[int] = mapped_column(Integer)
    access_key: Mapped[str] = mapped_column(String(20))
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # wall time the session held its slots
    cpu_alloc: Mapped[float] = mapped_column(Float, default=0.0)  # core-seconds allocated
    mem_alloc: Mapped[float] = mapped_column(Float, default=0.0)  # byte-seconds allocated
    accel_alloc: Mapped[float] = mapped_column(Float, default=0.0)  # device-seconds (shares count as fractions)
    cpu_used: Mapped[float] = mapped_column(Float, default=0.0)  # CPU seconds used
    mem_used: Mapped[float] = mapped_column(Float, default=0.0)  # byte-seconds in use
    mem_peak: Mapped[int] = mapped_column(BigInteger, default=0)
    accel_used: Mapped[float] = mapped_column(Float, default=0.0)  # device-seconds busy (utilisation x time)
    accel_mem: Mapped[float] = mapped_column(Float, default=0.0)  # byte-seconds of device memory in use
    disk_read: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_write: Mapped[int] = mapped_column(BigInteger, default=0)
    net_rx: Mapped[int] = mapped_column(BigInteger, default=0)
    net_tx: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageHour(_Rollup, Base):
    """One session's usage within one UTC hour (hour buckets, and the partial days at a period's edges)."""

    __tablename__ = "usage_hours"
    __table_args__ = (Index("ix_usage_hours_hour_group", "hour", "group_id"),
                      Index("ix_usage_hours_hour_domain", "hour", "domain_id"),
                      Index("ix_usage_hours_hour_user", "hour", "user_id"))

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)


class UsageDay(_Rollup, Base):
    """One session's usage within one UTC day: what day and month buckets read (24 times fewer rows)."""

    __tablename__ = "usage_days"
    __table_args__ = (Index("ix_usage_days_day_group", "day", "group_id"),
                      Index("ix_usage_days_day_domain", "day", "domain_id"),
                      Index("ix_usage_days_day_user", "day", "user_id"))

    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
