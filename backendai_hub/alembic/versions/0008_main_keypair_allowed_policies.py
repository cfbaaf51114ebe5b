"""main keypair of a user; resource policies a domain's admins may assign

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('users', sa.Column('main_access_key', sa.String(length=20), nullable=True))
    op.add_column('domains', sa.Column('allowed_resource_policies', sa.JSON(), nullable=False,
                                       server_default=sa.text("'{}'")))
    # each user's main keypair: the one sessions were charged to so far, the oldest active one
    # (else the oldest); a user without keypairs gets one at their first issue
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT user_id, access_key FROM keypairs ORDER BY user_id, is_active DESC, created_at, access_key"))
    main: dict = {}
    for user_id, access_key in rows:
        main.setdefault(user_id, access_key)
    for user_id, access_key in main.items():
        bind.execute(sa.text("UPDATE users SET main_access_key = :ak WHERE id = :id"),
                     {"ak": access_key, "id": user_id})


def downgrade() -> None:
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_column('allowed_resource_policies')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('main_access_key')
