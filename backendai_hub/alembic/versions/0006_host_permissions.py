"""storage-host permissions: allowed_vfolder_hosts becomes host -> permissions

Revision ID: 0006
Revises: 0005
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TABLES = ('domains', 'groups', 'keypair_resource_policies')
# Backend.AI's VFolderHostPermission values; a host listed before permissions existed had them all
ALL = ['create-vfolder', 'modify-vfolder', 'delete-vfolder', 'mount-in-session', 'upload-file', 'download-file',
       'invite-others', 'set-user-specific-permission']


def _rewrite(convert) -> None:
    conn = op.get_bind()
    for name in TABLES:
        table = sa.table(name, sa.column('id'), sa.column('allowed_vfolder_hosts', sa.JSON()))
        for row_id, value in conn.execute(sa.select(table.c.id, table.c.allowed_vfolder_hosts)).all():
            if isinstance(value, str):
                value = json.loads(value)
            new = convert(value)
            if new is not None:
                conn.execute(table.update().where(table.c.id == row_id).values(allowed_vfolder_hosts=new))


def upgrade() -> None:
    _rewrite(lambda v: {h: list(ALL) for h in v} if isinstance(v, list) else None)


def downgrade() -> None:
    # a list cannot say which permissions a host grants: keep the hosts that grant any
    _rewrite(lambda v: [h for h, perms in v.items() if perms] if isinstance(v, dict) else None)
