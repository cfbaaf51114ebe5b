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
    op.create_table('usage_hours',
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
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
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_usage_hours_session_id_sessions'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('hour', 'session_id', name=op.f('pk_usage_hours'))
    )
    op.create_index('ix_usage_hours_hour_group', 'usage_hours', ['hour', 'group_id'], unique=False)
    op.create_index('ix_usage_hours_hour_domain', 'usage_hours', ['hour', 'domain_id'], unique=False)
    op.create_index('ix_usage_hours_hour_user', 'usage_hours', ['hour', 'user_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_usage_hours_hour_user', table_name='usage_hours')
    op.drop_index('ix_usage_hours_hour_domain', table_name='usage_hours')
    op.drop_index('ix_usage_hours_hour_group', table_name='usage_hours')
    op.drop_table('usage_hours')
    op.drop_table('usage_samples')
