"""The results store: models, runs, per-set results and samples, and the submission queue, in
any SQLAlchemy database (SQLite by default).

* `tables`: the tables and the vocabularies of their columns.
* `engine`: where the store is (`--db` > `$IMHI_DB_URL` > the per-user SQLite file), opening
  it, the Alembic migrations (`migrations/`) and the write transaction.
* `validate`: the checks of what `record_run` is given, and the rows built from it.
* `record`: `record_run`, which writes one reproduced run in one transaction.
* `reported`: the paper's weighted F1 and `load_reported`, which writes them as "reported"
  runs.

Opening or upgrading a store never inserts rows: a new store is empty until something is
recorded, and the paper's rows come only from `imhi-bench db init`.
"""
