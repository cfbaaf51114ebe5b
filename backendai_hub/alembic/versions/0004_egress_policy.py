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
    # plain ADD COLUMN (no batch table rebuild): SQLite would refuse to drop a table that keypairs
    # reference while foreign keys are enforced, and nothing here needs a rebuild
    op.add_column('keypair_resource_policies',
                  sa.Column('egress', sa.String(length=16), server_default='none', nullable=False))
    op.add_column('keypair_resource_policies',
                  sa.Column('egress_allowlist', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('keypair_resource_policies', schema=None) as batch_op:
        batch_op.drop_column('egress_allowlist')
        batch_op.drop_column('egress')
