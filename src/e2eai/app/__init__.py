"""The web application's own records: predictions, their feedback labels and the audit log.

``AppStore`` keeps them in a SQL database (SQLite by default, PostgreSQL by URL; the schema
is Alembic migrations shipped in ``migrations/``); ``RecordWriter`` puts predictions in front
of it with a local spool, so none is lost while the database is down.
"""
