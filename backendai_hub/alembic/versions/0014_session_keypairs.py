"""keypairs: session_id, the session a web shell's own keypair was issued to (deleted when it ends)

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (no batch rebuild): sessions refer to this table
    op.add_column('keypairs', sa.Column('session_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_keypairs_session_id'), 'keypairs', ['session_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_keypairs_session_id'), table_name='keypairs')
    # not batch: recreating the table on SQLite would drop a table that sessions refer to
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE keypairs DROP COLUMN session_id')
    else:
        op.drop_column('keypairs', 'session_id')
