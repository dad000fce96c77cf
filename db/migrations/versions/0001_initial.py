"""initial

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:37:51.197644+00:00

Generated with autogenerate against an empty SQLite database, then edited by hand:

- status-like columns are plain VARCHAR(32) (the models use non-native StrEnum types without a
  CHECK constraint; allowed values are validated in Python, noted in comments below), so no
  PostgreSQL ENUM type is created and adding a value needs no migration;
- timestamps are ``DateTime(timezone=True)`` (``timestamptz`` on PostgreSQL; naive UTC text on
  SQLite, where reel.db.models.UTCDateTime re-attaches the zone);
- indexes of new tables are created with plain ``op.create_index`` (no batch copy needed);
- downgrade drops the tables, children first.

Checked on SQLite and PostgreSQL 15: upgrade, downgrade, and an empty autogenerate comparison
against reel.db.models (tests/db).
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('collections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('references_dir', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_collections')),
        sa.UniqueConstraint('name', name=op.f('uq_collections_name'))
    )
    op.create_table('items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('collection_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('source_path', sa.Text(), nullable=False),
        sa.Column('source_sha256', sa.String(length=64), nullable=True),
        sa.Column('source_framemd5_path', sa.Text(), nullable=True),
        sa.Column('probe', sa.JSON(), nullable=True),
        sa.Column('fps', sa.String(length=32), nullable=True),
        sa.Column('n_frames', sa.Integer(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=True),
        sa.Column('height', sa.Integer(), nullable=True),
        sa.Column('has_audio', sa.Boolean(), nullable=False),
        sa.Column('ground_truth_path', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),  # registered | running | restored | delivered | failed (ItemStatus)
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.id'], name=op.f('fk_items_collection_id_collections'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_items')),
        sa.UniqueConstraint('collection_id', 'name', name=op.f('uq_items_collection_id_name'))
    )
    op.create_index(op.f('ix_items_source_sha256'), 'items', ['source_sha256'], unique=False)
    op.create_index(op.f('ix_items_status'), 'items', ['status'], unique=False)

    op.create_table('reference_images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('collection_id', sa.Integer(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.id'], name=op.f('fk_reference_images_collection_id_collections'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_images')),
        sa.UniqueConstraint('collection_id', 'sha256', name=op.f('uq_reference_images_collection_id_sha256'))
    )
    op.create_table('runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('collection_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),  # running | completed | failed | partial (RunStatus)
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reel_version', sa.String(length=64), nullable=False),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('prefect_flow_run_id', sa.String(length=64), nullable=True),
        sa.Column('mlflow_run_id', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['collection_id'], ['collections.id'], name=op.f('fk_runs_collection_id_collections'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    op.create_index(op.f('ix_runs_collection_id'), 'runs', ['collection_id'], unique=False)
    op.create_index(op.f('ix_runs_prefect_flow_run_id'), 'runs', ['prefect_flow_run_id'], unique=False)

    op.create_table('deliverables',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),  # master | mezzanine | access | framemd5 | sidecar | premis
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('n_frames', sa.Integer(), nullable=True),
        sa.Column('fps', sa.String(length=32), nullable=True),
        sa.Column('codec', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_deliverables_item_id_items'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_deliverables_run_id_runs'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_deliverables'))
    )
    op.create_index(op.f('ix_deliverables_item_id'), 'deliverables', ['item_id'], unique=False)
    op.create_index(op.f('ix_deliverables_run_id'), 'deliverables', ['run_id'], unique=False)

    op.create_table('shots',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('index', sa.Integer(), nullable=False),
        sa.Column('start_frame', sa.Integer(), nullable=False),
        sa.Column('stop_frame', sa.Integer(), nullable=False),
        sa.Column('transition', sa.String(length=32), nullable=False),
        sa.Column('confidence', sa.Float(), nullable=False),
        sa.Column('origin', sa.String(length=32), nullable=False),  # detected | manual
        sa.Column('status', sa.String(length=32), nullable=False),  # pending | running | done | flagged | approved | rejected | rerun_requested | failed
        sa.Column('flags', sa.JSON(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('start_frame >= 0', name=op.f('ck_shots_start_frame_nonnegative')),
        sa.CheckConstraint('stop_frame > start_frame', name=op.f('ck_shots_frame_range_nonempty')),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_shots_item_id_items'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shots')),
        sa.UniqueConstraint('item_id', 'index', name=op.f('uq_shots_item_id_index'))
    )
    op.create_index(op.f('ix_shots_status'), 'shots', ['status'], unique=False)

    op.create_table('events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=True),
        sa.Column('shot_id', sa.Integer(), nullable=True),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('event_type', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),  # success | failure | warning
        sa.Column('agent', sa.String(length=255), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_events_item_id_items'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_events_run_id_runs'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_events_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    op.create_index(op.f('ix_events_event_type'), 'events', ['event_type'], unique=False)
    op.create_index(op.f('ix_events_item_id'), 'events', ['item_id'], unique=False)
    op.create_index(op.f('ix_events_run_id'), 'events', ['run_id'], unique=False)
    op.create_index(op.f('ix_events_shot_id'), 'events', ['shot_id'], unique=False)

    op.create_table('metrics',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('shot_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=128), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_metrics_item_id_items'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_metrics_run_id_runs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_metrics_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics'))
    )
    op.create_index(op.f('ix_metrics_item_id'), 'metrics', ['item_id'], unique=False)
    op.create_index(op.f('ix_metrics_run_id'), 'metrics', ['run_id'], unique=False)
    op.create_index(op.f('ix_metrics_shot_id_name'), 'metrics', ['shot_id', 'name'], unique=False)

    op.create_table('palettes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('shot_id', sa.Integer(), nullable=True),
        sa.Column('scope', sa.String(length=32), nullable=False),  # shot | film
        sa.Column('k', sa.Integer(), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('colors', sa.JSON(), nullable=False),
        sa.Column('path', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_palettes_item_id_items'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_palettes_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_palettes'))
    )
    op.create_index(op.f('ix_palettes_item_id'), 'palettes', ['item_id'], unique=False)
    op.create_index(op.f('ix_palettes_shot_id'), 'palettes', ['shot_id'], unique=False)

    op.create_table('reviews',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shot_id', sa.Integer(), nullable=False),
        sa.Column('reviewer', sa.String(length=255), nullable=False),
        sa.Column('decision', sa.String(length=32), nullable=False),  # approve | reject | rerun
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_reviews_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reviews'))
    )
    op.create_index(op.f('ix_reviews_shot_id'), 'reviews', ['shot_id'], unique=False)

    op.create_table('shot_references',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shot_id', sa.Integer(), nullable=False),
        sa.Column('reference_id', sa.Integer(), nullable=False),
        sa.Column('rank', sa.Integer(), nullable=False),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('pinned', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['reference_id'], ['reference_images.id'], name=op.f('fk_shot_references_reference_id_reference_images'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_shot_references_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_shot_references')),
        sa.UniqueConstraint('shot_id', 'reference_id', name=op.f('uq_shot_references_shot_id_reference_id'))
    )
    op.create_index(op.f('ix_shot_references_reference_id'), 'shot_references', ['reference_id'], unique=False)

    op.create_table('stage_results',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.Integer(), nullable=False),
        sa.Column('shot_id', sa.Integer(), nullable=True),
        sa.Column('stage', sa.String(length=64), nullable=False),
        sa.Column('engine', sa.String(length=64), nullable=False),
        sa.Column('engine_version', sa.String(length=64), nullable=False),
        sa.Column('params_hash', sa.String(length=64), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('weights_sha256', sa.String(length=64), nullable=True),
        sa.Column('output_path', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=32), nullable=False),  # done | failed | skipped
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_stage_results_item_id_items'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_stage_results_run_id_runs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['shot_id'], ['shots.id'], name=op.f('fk_stage_results_shot_id_shots'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_results'))
    )
    op.create_index(op.f('ix_stage_results_item_id_stage'), 'stage_results', ['item_id', 'stage'], unique=False)
    op.create_index(op.f('ix_stage_results_run_id'), 'stage_results', ['run_id'], unique=False)
    op.create_index(op.f('ix_stage_results_shot_id_stage'), 'stage_results', ['shot_id', 'stage'], unique=False)
    op.create_index(op.f('ix_stage_results_stage_engine_params_hash'), 'stage_results', ['stage', 'engine', 'params_hash'], unique=False)


def downgrade() -> None:
    # Children first; dropping a table drops its indexes and constraints too.
    op.drop_table('stage_results')
    op.drop_table('shot_references')
    op.drop_table('reviews')
    op.drop_table('palettes')
    op.drop_table('metrics')
    op.drop_table('events')
    op.drop_table('shots')
    op.drop_table('deliverables')
    op.drop_table('runs')
    op.drop_table('reference_images')
    op.drop_table('items')
    op.drop_table('collections')
