"""The metadata tables, as SQLAlchemy Core objects the queries are written against.

Times are Unix seconds (BIGINT) everywhere: the API speaks Unix timestamps and both backends
compare integers the same way. Changing a table here needs a new alembic revision in
``api/db/migrations/versions`` (startup applies them).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

BigSerial = sa.BigInteger().with_variant(sa.Integer, "sqlite")
"""A 64-bit key. SQLite's INTEGER PRIMARY KEY is already its 64-bit rowid, and only the type
spelled INTEGER is; PostgreSQL needs BIGINT (a SERIAL stops at 2**31 - 1 rows)."""
LIVE = sa.text("deleted_at IS NULL")
PENDING_REMOVAL = sa.text("deleted_at IS NOT NULL AND original_removed = false")

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("verified", sa.Boolean, nullable=False, default=False),
    sa.Column("verified_at", sa.BigInteger),
    sa.Column("plan", sa.String(16), nullable=False, default="free"),
    sa.Column("key_count", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

teams = sa.Table(
    "teams", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hash", sa.String(16), nullable=False, unique=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), unique=True),
    sa.Column("storage_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(32), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("abilities", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

media = sa.Table(
    "media", metadata,
    sa.Column("seq", BigSerial, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(16), nullable=False, unique=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), nullable=False),
    sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id")),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("extension", sa.String(8), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("filesize", sa.BigInteger, nullable=False),
    sa.Column("namespace", sa.String(64)),
    sa.Column("public", sa.Boolean, nullable=False),
    sa.Column("external_id", sa.String(255)),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("date", sa.BigInteger),
    sa.Column("sort_at", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("retain_until", sa.BigInteger),
    sa.Column("deleted_at", sa.BigInteger),
    sa.Column("original_removed", sa.Boolean, nullable=False, default=False),
    sa.Column("removal_lease", sa.BigInteger),
    # Every list order is served by a partial index of live rows, so a deleted million is
    # never walked (revision 0002; its docstring says which query each one serves).
    sa.Index("ix_media_live_order", "team_id", "sort_at", "seq",
             sqlite_where=LIVE, postgresql_where=LIVE),
    sa.Index("ix_media_live_namespace_order", "team_id", "namespace", "sort_at", "seq",
             sqlite_where=LIVE, postgresql_where=LIVE),
    sa.Index("ix_media_live_expires_at", "expires_at", sqlite_where=LIVE, postgresql_where=LIVE),
    sa.Index("ix_media_live_retain_until", "retain_until",
             sqlite_where=LIVE, postgresql_where=LIVE),
    sa.Index("ix_media_pending_removal", "deleted_at",
             sqlite_where=PENDING_REMOVAL, postgresql_where=PENDING_REMOVAL),
    sa.Index(
        "uq_media_team_external_id", "team_id", "external_id", unique=True,
        sqlite_where=sa.text("deleted_at IS NULL AND external_id IS NOT NULL"),
        postgresql_where=sa.text("deleted_at IS NULL AND external_id IS NOT NULL"),
    ),
)

media_tags = sa.Table(
    "media_tags", metadata,
    sa.Column("media_seq", BigSerial, sa.ForeignKey("media.seq", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("tag", sa.String(50), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("team_id", sa.Integer, nullable=False),
    sa.Column("sort_at", sa.BigInteger),
    # A tag's rows in list order: a page filtered by a rare tag walks only them
    # (``api.db.media_list``). ``sort_at`` is the media's, kept equal on every change.
    sa.Index("ix_media_tags_order", "team_id", "tag", "sort_at", "media_seq"),
)

namespace_totals = sa.Table(
    "namespace_totals", metadata,
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("media_count", sa.BigInteger, nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)
"""Live media and their bytes per namespace, changed in the transaction that changes the media
(upload, PATCH, batch, every delete path), so ``GET /v1/namespaces`` reads a team's few rows
instead of aggregating its million. Rows at zero stay (a namespace used again reuses them) and
are not listed."""

namespace_deletions = sa.Table(
    "namespace_deletions", metadata,
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("namespace", sa.String(64), primary_key=True),
    sa.Column("up_to_seq", sa.BigInteger, nullable=False),
    sa.Column("claimed_until", sa.BigInteger),
)
"""A namespace delete in progress: its rows up to ``up_to_seq`` (every row that existed when
it was asked for) are marked in chunks by the request, then by any sweeper, until none is
left; ``claimed_until`` keeps one worker on it at a time."""

usage_months = sa.Table(
    "usage_months", metadata,
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("uploads", sa.Integer, nullable=False),
)

rate_counters = sa.Table(
    "rate_counters", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Index("ix_rate_counters_expires_at", "expires_at"),
)
