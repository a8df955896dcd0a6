"""Alembic environment: migrations run on a connection handed in by ``api.db.engine``.

There is no alembic.ini and no URL here: the application opens the connection (inside the
transaction that holds the migration lock) and passes it as ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from api.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
