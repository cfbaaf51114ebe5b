"""code_logs: the opt-in record of code run in sessions (code_log flags on domains and groups)

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (no batch table rebuild): SQLite would refuse to drop a table that rows refer to
    for table in ('domains', 'groups'):
        op.add_column(table, sa.Column('code_log', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.create_table('code_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('group', sa.String(length=64), nullable=False),
    sa.Column('server_name', sa.String(length=255), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.Enum('cell', 'terminal', 'gap', name='code_log_kind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status', sa.Enum('ok', 'error', 'aborted', 'unknown', name='code_log_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('kernel_id', sa.String(length=128), nullable=True),
    sa.Column('msg_id', sa.String(length=128), nullable=True),
    sa.Column('execution_count', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('code_size', sa.BigInteger(), nullable=False),
    sa.Column('code_sha256', sa.String(length=64), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('captured_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_code_logs')),
    sa.UniqueConstraint('session_id', 'record_id', name='uq_code_logs_session_record')
    )
    with op.batch_alter_table('code_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_code_logs_domain'), ['domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_code_logs_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_code_logs_started_at'), ['started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_code_logs_username'), ['username'], unique=False)
    op.create_table('code_log_streams',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('gap_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('captured_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('session_id', name=op.f('pk_code_log_streams'))
    )


def downgrade() -> None:
    op.drop_table('code_log_streams')
    with op.batch_alter_table('code_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_code_logs_username'))
        batch_op.drop_index(batch_op.f('ix_code_logs_started_at'))
        batch_op.drop_index(batch_op.f('ix_code_logs_session_id'))
        batch_op.drop_index(batch_op.f('ix_code_logs_domain'))
    op.drop_table('code_logs')
    # not batch: recreating domains or groups on SQLite would drop a table that rows still refer to
    # (foreign keys are on); SQLite >= 3.35 drops an unconstrained column in place
    for table in ('groups', 'domains'):
        if op.get_bind().dialect.name == 'sqlite':
            op.execute(f'ALTER TABLE {table} DROP COLUMN code_log')
        else:
            op.drop_column(table, 'code_log')
