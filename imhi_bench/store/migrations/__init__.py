"""Alembic migrations of the results store (configured in code: `store.alembic_config`)."""
