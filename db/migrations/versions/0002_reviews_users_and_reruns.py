"""reviews: users, re-run requests, versioned shot outputs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 01:02:59.132813+00:00

Generated with autogenerate against a SQLite catalog at 0001, then edited by hand:

- ``users``: dashboard accounts (unique name, role, salted scrypt hash, created/last login);
- ``rerun_requests``: a reviewer's request to process a shot again (params JSON, status,
  the run that picked it up, the output version it produced);
- ``shots.output_version`` and ``stage_results.output_version``: which version of a shot's
  outputs is current / a stage result belongs to. Existing rows get 1 (``server_default``), the
  version that lives directly in ``shot-NNNN/``;
- as in 0001, status-like columns are plain VARCHAR(32) (values validated in Python), indexes
  of new tables use plain ``op.create_index``; the added columns go through batch mode (a plain
  ``ALTER TABLE ADD COLUMN`` on both backends; dropping them copies the table on SQLite).

Checked on SQLite and PostgreSQL 15: upgrade from 0001 with rows in place, downgrade to 0001,
and an empty autogenerate comparison against reel.db.models (tests/db).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('users',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('role', sa.String(length=32), nullable=False),  # reviewer | admin (UserRole)
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
        sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('rerun_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shot_id', sa.Integer(), nullable=False),
        sa.Column('review_id', sa.Integer(), nullable=True),
        sa.Column('requested_by', sa.String(length=255), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),  # pending | running | done | failed | cancelled (RerunStatus)
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('picked_up_run_id', sa.Integer(), nullable=True),
        sa.Column('output_version', sa.Integer(), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['picked_up_run_id'], ['runs.id'], name=op.f('fk_rerun_requests_picked_up_run_id_runs'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], name=op.f('fk_rerun_requests_review_id_reviews'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_rerun_requests_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rerun_requests'))
    )
    op.create_index(op.f('ix_rerun_requests_picked_up_run_id'), 'rerun_requests', ['picked_up_run_id'], unique=False)
    op.create_index(op.f('ix_rerun_requests_shot_id'), 'rerun_requests', ['shot_id'], unique=False)
    op.create_index(op.f('ix_rerun_requests_status'), 'rerun_requests', ['status'], unique=False)

    with op.batch_alter_table('shots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_version', sa.Integer(), server_default=sa.text('1'), nullable=False))

    with op.batch_alter_table('stage_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('output_version', sa.Integer(), server_default=sa.text('1'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('stage_results', schema=None) as batch_op:
        batch_op.drop_column('output_version')

    with op.batch_alter_table('shots', schema=None) as batch_op:
        batch_op.drop_column('output_version')

    op.drop_index(op.f('ix_rerun_requests_status'), table_name='rerun_requests')
    op.drop_index(op.f('ix_rerun_requests_shot_id'), table_name='rerun_requests')
    op.drop_index(op.f('ix_rerun_requests_picked_up_run_id'), table_name='rerun_requests')
    op.drop_table('rerun_requests')
    op.drop_table('users')
