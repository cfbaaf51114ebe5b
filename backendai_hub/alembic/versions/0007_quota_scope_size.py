"""quota scope size: the total of the quotas of a user's (group's) vfolders

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('user_resource_policies', 'group_resource_policies'):
        op.add_column(table, sa.Column('max_quota_scope_size', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for table in ('user_resource_policies', 'group_resource_policies'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('max_quota_scope_size')
