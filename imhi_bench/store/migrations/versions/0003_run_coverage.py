"""Run coverage: runs.complete (scored every sample of every set it claims; NULL = unknown)
and runs.coverage (why a run is partial or unknown), filled in for the runs already stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_runs = sa.table(
    "runs",
    sa.column("id", sa.Integer), sa.column("source", sa.String), sa.column("tasks", sa.JSON),
    sa.column("format", sa.String), sa.column("provenance", sa.JSON),
    sa.column("complete", sa.Boolean), sa.column("coverage", sa.String),
)
_set_results = sa.table(
    "set_results",
    sa.column("run_id", sa.Integer), sa.column("set_name", sa.String), sa.column("n", sa.Integer),
)


def upgrade() -> None:
    # Plain ADD COLUMNs (no batch copy of `runs`): on SQLite a batch rebuild drops the table,
    # and with foreign keys on that drop would cascade into samples and set_results.
    op.add_column("runs", sa.Column("complete", sa.Boolean(), nullable=True))
    op.add_column("runs", sa.Column("coverage", sa.String(length=300), nullable=True))
    _fill_in(op.get_bind())


def _fill_in(conn: sa.Connection) -> None:
    """Each stored run's coverage, by the rule new runs are recorded with
    (`scoring.coverage.run_coverage`): from its stored provenance (--limit, each set's
    "complete" and row count) and each set's n against the released file's rows; a run
    nothing decides stays NULL (unknown, not ranked).  The paper's reported rows are complete."""
    from imhi_bench.scoring.coverage import run_coverage

    counts: dict[int, dict[str, int | None]] = defaultdict(dict)
    for run_id, set_name, n in conn.execute(
            sa.select(_set_results.c.run_id, _set_results.c.set_name, _set_results.c.n)):
        counts[run_id][set_name] = n
    runs = conn.execute(sa.select(_runs.c.id, _runs.c.source, _runs.c.tasks, _runs.c.format,
                                  _runs.c.provenance)).all()
    for run_id, source, tasks, fmt, provenance in runs:
        complete, coverage = run_coverage(source=source, tasks=tasks, fmt=fmt,
                                          provenance=provenance, counts=counts[run_id])
        conn.execute(sa.update(_runs).where(_runs.c.id == run_id)
                     .values(complete=complete, coverage=coverage))


def downgrade() -> None:
    # SQLite (>= 3.35) drops a column in place; no batch copy, for the reason above.
    op.drop_column("runs", "coverage")
    op.drop_column("runs", "complete")
