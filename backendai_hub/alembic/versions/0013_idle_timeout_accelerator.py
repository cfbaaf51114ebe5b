"""keypair policies: idle_timeout_accelerator, the idle timeout of sessions holding accelerators

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (no batch rebuild): keypairs refer to this table
    op.add_column('keypair_resource_policies', sa.Column('idle_timeout_accelerator', sa.Integer(), nullable=True))


def downgrade() -> None:
    # not batch: recreating the table on SQLite would drop a table that keypairs refer to
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE keypair_resource_policies DROP COLUMN idle_timeout_accelerator')
    else:
        op.drop_column('keypair_resource_policies', 'idle_timeout_accelerator')
