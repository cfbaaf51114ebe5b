"""initial tenancy model

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 16:00:41.836103
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('domains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('total_resource_slots', sa.JSON(), nullable=False),
    sa.Column('allowed_images', sa.JSON(), nullable=False),
    sa.Column('allowed_vfolder_hosts', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    sa.UniqueConstraint('name', name=op.f('uq_domains_name'))
    )
    op.create_table('group_resource_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('max_vfolder_count', sa.Integer(), nullable=True),
    sa.Column('max_quota_size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_resource_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_group_resource_policies_name'))
    )
    op.create_table('keypair_resource_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('total_resource_slots', sa.JSON(), nullable=False),
    sa.Column('max_concurrent_sessions', sa.Integer(), nullable=True),
    sa.Column('max_session_lifetime', sa.Integer(), nullable=True),
    sa.Column('idle_timeout', sa.Integer(), nullable=True),
    sa.Column('allowed_vfolder_hosts', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_keypair_resource_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_keypair_resource_policies_name'))
    )
    op.create_table('user_resource_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('max_vfolder_count', sa.Integer(), nullable=True),
    sa.Column('max_quota_size', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_resource_policies')),
    sa.UniqueConstraint('name', name=op.f('uq_user_resource_policies_name'))
    )
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('total_resource_slots', sa.JSON(), nullable=False),
    sa.Column('allowed_images', sa.JSON(), nullable=False),
    sa.Column('allowed_vfolder_hosts', sa.JSON(), nullable=False),
    sa.Column('resource_policy_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_groups_domain_id_domains'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['resource_policy_id'], ['group_resource_policies.id'], name=op.f('fk_groups_resource_policy_id_group_resource_policies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('domain_id', 'name', name='uq_groups_domain_name')
    )
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_groups_domain_id'), ['domain_id'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('full_name', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=256), nullable=True),
    sa.Column('role', sa.Enum('superadmin', 'domain-admin', 'user', name='user_role', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status', sa.Enum('active', 'inactive', name='user_status', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('resource_policy_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_users_domain_id_domains'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['resource_policy_id'], ['user_resource_policies.id'], name=op.f('fk_users_resource_policy_id_user_resource_policies'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_domain_id'), ['domain_id'], unique=False)

    op.create_table('group_members',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_group_members_group_id_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_group_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'user_id', name=op.f('pk_group_members'))
    )
    op.create_table('keypairs',
    sa.Column('access_key', sa.String(length=20), nullable=False),
    sa.Column('secret_key_encrypted', sa.LargeBinary(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('resource_policy_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['resource_policy_id'], ['keypair_resource_policies.id'], name=op.f('fk_keypairs_resource_policy_id_keypair_resource_policies'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_keypairs_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('access_key', name=op.f('pk_keypairs'))
    )
    with op.batch_alter_table('keypairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_keypairs_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('keypairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_keypairs_user_id'))

    op.drop_table('keypairs')
    op.drop_table('group_members')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_domain_id'))

    op.drop_table('users')
    with op.batch_alter_table('groups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_groups_domain_id'))

    op.drop_table('groups')
    op.drop_table('user_resource_policies')
    op.drop_table('keypair_resource_policies')
    op.drop_table('group_resource_policies')
    op.drop_table('domains')
