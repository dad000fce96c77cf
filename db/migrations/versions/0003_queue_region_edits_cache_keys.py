"""queue, region edits, cache keys, palette source

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 03:22:23.071993+00:00

Generated with autogenerate against a SQLite catalog at 0002, then edited by hand:

- ``queue_entries``: collections waiting for the nightly flow (``reel queue add``);
- ``region_edits``: reviewers' regional colour edits, re-applied on re-runs (``reel edit``);
- ``stage_results.cache_key`` (indexed) and ``stage_results.device``: content-addressed resume
  and where a stage ran;
- ``palettes.source`` / ``palettes.model_version``: reference k-means, pooled film palette or a
  seeded GMM palette and the model it came from;
- ``shots.reference_cluster``: shots that share references.

As in 0001/0002, status-like columns are plain VARCHAR(32) (validated in Python); added columns
go through batch mode. Checked by tests/db (upgrade/downgrade, empty autogenerate diff) on SQLite
and PostgreSQL.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('queue_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),  # queued | running | done | failed | cancelled (QueueStatus)
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('requested_by', sa.String(length=255), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['collection_id'], ['collections.id'], name=op.f('fk_queue_entries_collection_id_collections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_queue_entries_run_id_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_entries'))
    )
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_queue_entries_collection_id'), ['collection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_entries_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_queue_entries_status'), ['status'], unique=False)

    op.create_table('region_edits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shot_id', sa.Integer(), nullable=False),
    sa.Column('region_id', sa.Integer(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_region_edits_shot_id_shots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_region_edits'))
    )
    with op.batch_alter_table('region_edits', schema=None) as batch_op:
        batch_op.create_index('ix_region_edits_shot_id_region_id', ['shot_id', 'region_id'], unique=False)

    with op.batch_alter_table('palettes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=32), server_default=sa.text("'reference'"), nullable=False))
        batch_op.add_column(sa.Column('model_version', sa.String(length=64), nullable=True))

    with op.batch_alter_table('shots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference_cluster', sa.Integer(), nullable=True))

    with op.batch_alter_table('stage_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cache_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('device', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_stage_results_cache_key'), ['cache_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stage_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stage_results_cache_key'))
        batch_op.drop_column('device')
        batch_op.drop_column('cache_key')

    with op.batch_alter_table('shots', schema=None) as batch_op:
        batch_op.drop_column('reference_cluster')

    with op.batch_alter_table('palettes', schema=None) as batch_op:
        batch_op.drop_column('model_version')
        batch_op.drop_column('source')

    with op.batch_alter_table('region_edits', schema=None) as batch_op:
        batch_op.drop_index('ix_region_edits_shot_id_region_id')

    op.drop_table('region_edits')
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_queue_entries_status'))
        batch_op.drop_index(batch_op.f('ix_queue_entries_run_id'))
        batch_op.drop_index(batch_op.f('ix_queue_entries_collection_id'))

    op.drop_table('queue_entries')
