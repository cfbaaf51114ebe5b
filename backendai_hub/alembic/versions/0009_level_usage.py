"""level_usage: what live sessions hold per keypair, group, domain and on the host; a user's groups indexed

Revision ID: 0009
Revises: 0008
"""
import json
from decimal import Context, Decimal

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# the same exact arithmetic and text form as admission's (a frozen copy: migrations do not import the app)
_EXACT = Context(prec=200)


def _text(v: Decimal) -> str:
    return format(_EXACT.normalize(v), "f")


def _add(into: dict, amounts: dict) -> None:
    for k, v in (amounts or {}).items():
        into[k] = _EXACT.add(into.get(k, Decimal(0)), Decimal(str(v)))


def _json(v):
    return json.loads(v) if isinstance(v, str) else (v or {})


def upgrade() -> None:
    op.create_table('level_usage',
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('slots', sa.JSON(), nullable=False),
    sa.Column('held', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'key', name=op.f('pk_level_usage'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_user_id'), ['user_id'], unique=False)

    # count what the live sessions hold now
    bind = op.get_bind()
    levels: dict = {}
    rows = bind.execute(sa.text("SELECT access_key, group_id, domain_id, slots, allocation FROM sessions "
                                "WHERE status IN ('starting', 'running')"))
    for access_key, group_id, domain_id, slots, allocation in rows:
        slots, allocation = _json(slots), _json(allocation)
        for key in (('keypair', access_key), ('group', str(group_id)), ('domain', str(domain_id)), ('host', '')):
            level = levels.setdefault(key, {"sessions": 0, "slots": {}, "devices": {}, "cpus": {}})
            level["sessions"] += 1
            _add(level["slots"], slots)
            if key[0] == 'host':
                for slot, per in (allocation.get("devices") or {}).items():
                    _add(level["devices"].setdefault(slot, {}), per)
                for cpu in allocation.get("cpuset") or ():
                    level["cpus"][str(cpu)] = level["cpus"].get(str(cpu), 0) + 1
    table = sa.table('level_usage', sa.column('kind'), sa.column('key'), sa.column('sessions'),
                     sa.column('slots', sa.JSON()), sa.column('held', sa.JSON()))
    records = []
    for (kind, key), level in sorted(levels.items()):
        held = {}
        if kind == 'host':
            devices = {slot: {d: _text(v) for d, v in sorted(per.items()) if v}
                       for slot, per in sorted(level["devices"].items())}
            held = {"devices": {s: per for s, per in devices.items() if per},
                    "cpus": dict(sorted(level["cpus"].items(), key=lambda kv: int(kv[0])))}
            held = {k: v for k, v in held.items() if v}
        records.append({"kind": kind, "key": key, "sessions": level["sessions"],
                        "slots": {k: _text(v) for k, v in sorted(level["slots"].items()) if v}, "held": held})
    if records:
        op.bulk_insert(table, records)


def downgrade() -> None:
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_user_id'))
    op.drop_table('level_usage')
