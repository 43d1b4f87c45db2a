"""The app database's Alembic migrations, run from code (no ``alembic.ini``).

``alembic_config(connection)`` is the configuration ``AppStore.migrate`` upgrades with and
the schema test checks with; ``env.py`` runs the migrations on that connection.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration that migrates the database behind ``connection``.

    The caller owns the transaction: ``env.py`` runs inside it, so the caller decides
    how it is locked and when it commits.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config
