"""Submission queue: the submissions table, and runs.submission_id linking a run to the
submission it evaluated.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=1000), nullable=False),
        sa.Column("revision", sa.String(length=200), nullable=False),
        sa.Column("precision", sa.String(length=8), nullable=False),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("adapter", sa.String(length=1000), nullable=False),
        sa.Column("adapter_revision", sa.String(length=200), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=True),
        sa.Column("params", sa.BigInteger(), nullable=True),
        sa.Column("base_model", sa.String(length=200), nullable=True),
        sa.Column("license", sa.String(length=100), nullable=True),
        sa.Column("training_data", sa.String(length=20), nullable=True),
        sa.Column("submitter", sa.String(length=200), nullable=True),
        sa.Column("needs_remote_code", sa.Boolean(), nullable=False),
        sa.Column("allow_pickle", sa.Boolean(), nullable=False),
        sa.Column("manifest", sa.String(length=1000), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat", sa.DateTime(), nullable=True),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_submissions_dedupe_key")),
        sa.UniqueConstraint("name", name=op.f("uq_submissions_name")),
    )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.create_index("ix_submissions_status_submitted", ["status", "submitted"],
                              unique=False)
    # A plain ADD COLUMN (no batch copy of `runs`): on SQLite a batch rebuild drops the
    # table, and with foreign keys on that drop would cascade into samples and set_results.
    op.add_column("runs", sa.Column("submission_id", sa.String(length=120), nullable=True))
    op.create_index(op.f("ix_runs_submission_id"), "runs", ["submission_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_runs_submission_id"), table_name="runs")
    # SQLite (>= 3.35) drops a column in place; no batch copy, for the reason above.
    op.drop_column("runs", "submission_id")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_status_submitted")
    op.drop_table("submissions")
