"""The metadata store: schema, the engine for SQLite/PostgreSQL, migrations, and the queries.

Queries live in small modules by what they touch (``accounts``, ``media``, ``counters``) and
take an open connection, so a handler composes several of them in one transaction.
"""

from api.db.availability import DatabaseUnavailable, is_unavailable
from api.db.engine import Database, normalise_database_url, upsert

__all__ = ["Database", "DatabaseUnavailable", "is_unavailable", "normalise_database_url",
           "upsert"]
