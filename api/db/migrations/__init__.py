"""Alembic revisions of the metadata schema, applied at startup by ``Database.migrate``."""
