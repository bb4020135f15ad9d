"""Alembic environment for the results store.

Run through `imhi_bench.store.engine` (which passes an open connection in
`config.attributes["connection"]`), or with `sqlalchemy.url` set on the config.
"""

from __future__ import annotations

from alembic import context

from imhi_bench.store.engine import make_engine, resolve_db_url
from imhi_bench.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=True,
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=resolve_db_url(config.get_main_option("sqlalchemy.url")),
               literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(resolve_db_url(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
