"""vfolders: folders, grants (invitations accepted, group overrides), invitations, session mounts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:00:37.750617
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vfolders',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('live_name', sa.String(length=64), nullable=True),
    sa.Column('owner_key', sa.String(length=24), nullable=False),
    sa.Column('host', sa.String(length=64), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('usage_mode', sa.Enum('general', 'data', 'model', name='vfolder_usage_mode', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('permission', sa.Enum('ro', 'rw', 'wd', name='vfolder_permission', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('cloneable', sa.Boolean(), nullable=False),
    sa.Column('is_public', sa.Boolean(), nullable=False),
    sa.Column('quota', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.Enum('ready', 'cloning', 'delete-pending', name='vfolder_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trashed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_vfolders_creator_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_vfolders_domain_id_domains'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_vfolders_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_vfolders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vfolders')),
    sa.UniqueConstraint('owner_key', 'live_name', name='uq_vfolders_owner_live_name')
    )
    with op.batch_alter_table('vfolders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vfolders_domain_id'), ['domain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolders_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolders_owner_key'), ['owner_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolders_user_id'), ['user_id'], unique=False)

    op.create_table('vfolder_grants',
    sa.Column('vfolder_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('permission', sa.Enum('ro', 'rw', 'wd', name='vfolder_permission', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_vfolder_grants_user_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vfolder_id'], ['vfolders.id'], name=op.f('fk_vfolder_grants_vfolder_id_vfolders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vfolder_id', 'user_id', name=op.f('pk_vfolder_grants'))
    )
    with op.batch_alter_table('vfolder_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vfolder_grants_user_id'), ['user_id'], unique=False)

    op.create_table('vfolder_invitations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('vfolder_id', sa.String(length=32), nullable=False),
    sa.Column('inviter_id', sa.Integer(), nullable=False),
    sa.Column('invitee_id', sa.Integer(), nullable=False),
    sa.Column('permission', sa.Enum('ro', 'rw', 'wd', name='vfolder_permission', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('state', sa.Enum('pending', 'accepted', 'rejected', 'canceled', name='vfolder_invitation_state', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('modified_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['invitee_id'], ['users.id'], name=op.f('fk_vfolder_invitations_invitee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inviter_id'], ['users.id'], name=op.f('fk_vfolder_invitations_inviter_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vfolder_id'], ['vfolders.id'], name=op.f('fk_vfolder_invitations_vfolder_id_vfolders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vfolder_invitations'))
    )
    with op.batch_alter_table('vfolder_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vfolder_invitations_invitee_id'), ['invitee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vfolder_invitations_vfolder_id'), ['vfolder_id'], unique=False)

    op.create_table('vfolder_mounts',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('vfolder_id', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('read_only', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_vfolder_mounts_session_id_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vfolder_id'], ['vfolders.id'], name=op.f('fk_vfolder_mounts_vfolder_id_vfolders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'vfolder_id', name=op.f('pk_vfolder_mounts'))
    )
    with op.batch_alter_table('vfolder_mounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vfolder_mounts_vfolder_id'), ['vfolder_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('vfolder_mounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vfolder_mounts_vfolder_id'))

    op.drop_table('vfolder_mounts')
    with op.batch_alter_table('vfolder_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vfolder_invitations_vfolder_id'))
        batch_op.drop_index(batch_op.f('ix_vfolder_invitations_invitee_id'))

    op.drop_table('vfolder_invitations')
    with op.batch_alter_table('vfolder_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vfolder_grants_user_id'))

    op.drop_table('vfolder_grants')
    with op.batch_alter_table('vfolders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vfolders_user_id'))
        batch_op.drop_index(batch_op.f('ix_vfolders_owner_key'))
        batch_op.drop_index(batch_op.f('ix_vfolders_group_id'))
        batch_op.drop_index(batch_op.f('ix_vfolders_domain_id'))

    op.drop_table('vfolders')
