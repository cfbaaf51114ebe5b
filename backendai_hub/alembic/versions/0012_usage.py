"""usage: per-session samples of cumulative counters and their hourly rollups

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('usage_samples',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('sampled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cpu_seconds', sa.Float(), nullable=False),
    sa.Column('mem_bytes', sa.BigInteger(), nullable=False),
    sa.Column('mem_peak', sa.BigInteger(), nullable=False),
    sa.Column('disk_read', sa.BigInteger(), nullable=False),
    sa.Column('disk_write', sa.BigInteger(), nullable=False),
    sa.Column('net_rx', sa.BigInteger(), nullable=False),
    sa.Column('net_tx', sa.BigInteger(), nullable=False),
    sa.Column('accel_util', sa.Float(), nullable=False),
    sa.Column('accel_mem', sa.BigInteger(), nullable=False),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_usage_samples_session_id_sessions'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'sampled_at', name=op.f('pk_usage_samples'))
    )
    for table, when in (('usage_hours', 'hour'), ('usage_days', 'day')):
        op.create_table(table,
        sa.Column('session_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('domain_id', sa.Integer(), nullable=False),
        sa.Column('access_key', sa.String(length=20), nullable=False),
        *[sa.Column(name, sa.Float(), nullable=False) for name in (
            'seconds', 'cpu_alloc', 'mem_alloc', 'accel_alloc', 'cpu_used', 'mem_used')],
        sa.Column('mem_peak', sa.BigInteger(), nullable=False),
        sa.Column('accel_used', sa.Float(), nullable=False),
        sa.Column('accel_mem', sa.Float(), nullable=False),
        *[sa.Column(name, sa.BigInteger(), nullable=False) for name in ('disk_read', 'disk_write', 'net_rx', 'net_tx')],
        sa.Column(when, sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f(f'fk_{table}_session_id_sessions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint(when, 'session_id', name=op.f(f'pk_{table}'))
        )
        for col in ('group', 'domain', 'user'):
            op.create_index(f'ix_{table}_{when}_{col}', table, [when, f'{col}_id'], unique=False)


def downgrade() -> None:
    for table, when in (('usage_days', 'day'), ('usage_hours', 'hour')):
        for col in ('user', 'domain', 'group'):
            op.drop_index(f'ix_{table}_{when}_{col}', table_name=table)
        op.drop_table(table)
    op.drop_table('usage_samples')
