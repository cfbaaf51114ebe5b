"""egress policy on keypair resource policies

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('keypair_resource_policies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('egress', sa.String(length=16), server_default='none', nullable=False))
        batch_op.add_column(sa.Column('egress_allowlist', sa.JSON(), nullable=True))
    op.execute("UPDATE keypair_resource_policies SET egress_allowlist = '[]'")
    with op.batch_alter_table('keypair_resource_policies', schema=None) as batch_op:
        batch_op.alter_column('egress_allowlist', existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('keypair_resource_policies', schema=None) as batch_op:
        batch_op.drop_column('egress_allowlist')
        batch_op.drop_column('egress')
