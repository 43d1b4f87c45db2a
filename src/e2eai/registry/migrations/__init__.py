"""The model registry's Alembic migrations, run from code (no ``alembic.ini``).

``alembic_config(connection)`` is the configuration the registry upgrades with when it opens
(``e2eai.registry.database.migrate``) and the schema test checks with; ``env.py`` runs the
migrations on that connection. The revisions are recorded in their own table,
``alembic_version_registry``, so the registry and the app (``alembic_version``) can share
one database.
"""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version_registry"


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration that migrates the registry database behind ``connection``.

    The caller owns the transaction: ``env.py`` runs inside it, so the caller decides
    how it is locked and when it commits.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config
