"""Run protocol: runs.protocol_id and runs.protocol (how a run's numbers were made,
`imhi_bench.core.protocol`), filled in for the runs already stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_runs = sa.table(
    "runs",
    sa.column("id", sa.Integer), sa.column("source", sa.String),
    sa.column("provenance", sa.JSON), sa.column("protocol_id", sa.String),
    sa.column("protocol", sa.JSON),
)


def upgrade() -> None:
    # Plain ADD COLUMNs, as 0003: a batch rebuild of `runs` would cascade into its children.
    op.add_column("runs", sa.Column("protocol_id", sa.String(length=40), nullable=True))
    op.add_column("runs", sa.Column("protocol", sa.JSON(), nullable=True))
    op.create_index("ix_runs_protocol_id", "runs", ["protocol_id"])
    _fill_in(op.get_bind())


def _fill_in(conn: sa.Connection) -> None:
    """Each stored run's protocol by the rule new runs are recorded with
    (`scoring.protocol.stored_protocol`): the paper's rows get theirs; a reproduced run
    gets the one its provenance implies, with unknown where it does not say (a run from
    before protocols sent chat templates by default, so its prompt is what it recorded)."""
    from imhi_bench.scoring.protocol import stored_protocol

    rows = conn.execute(sa.select(_runs.c.id, _runs.c.source, _runs.c.provenance)).all()
    for run_id, source, provenance in rows:
        try:
            protocol = stored_protocol(source, provenance)
        except Exception:  # noqa: BLE001 - a malformed old row stays unknown, never blocks
            continue
        conn.execute(sa.update(_runs).where(_runs.c.id == run_id)
                     .values(protocol_id=protocol["id"], protocol=protocol))


def downgrade() -> None:
    op.drop_index("ix_runs_protocol_id", table_name="runs")
    op.drop_column("runs", "protocol")
    op.drop_column("runs", "protocol_id")
