"""Initial schema: accounts, teams, keys, media with tags, monthly usage, rate counters.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ANONYMOUS_TEAM_HASH = "anon"
LIVE_ROWS = sa.text("deleted_at IS NULL AND external_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("verified_at", sa.BigInteger),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("key_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    teams = op.create_table(
        "teams",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hash", sa.String(16), nullable=False, unique=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), unique=True),
        sa.Column("storage_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
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
    op.create_table(
        "media",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
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
        sa.Column("original_removed", sa.Boolean, nullable=False),
    )
    op.create_index("ix_media_team_order", "media", ["team_id", "sort_at", "seq"])
    op.create_index("ix_media_team_namespace", "media", ["team_id", "namespace"])
    op.create_index("ix_media_expires_at", "media", ["expires_at"])
    op.create_index("ix_media_retain_until", "media", ["retain_until"])
    op.create_index("ix_media_deleted_pending", "media", ["deleted_at", "original_removed"])
    op.create_index("uq_media_team_external_id", "media", ["team_id", "external_id"], unique=True,
                    sqlite_where=LIVE_ROWS, postgresql_where=LIVE_ROWS)
    op.create_table(
        "media_tags",
        sa.Column("media_seq", sa.Integer, sa.ForeignKey("media.seq", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("tag", sa.String(50), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("team_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_media_tags_team_tag", "media_tags", ["team_id", "tag", "media_seq"])
    op.create_table(
        "usage_months",
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("uploads", sa.Integer, nullable=False),
    )
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rate_counters_expires_at", "rate_counters", ["expires_at"])
    # Anonymous uploads share one team (the reference: "Storage: Shared"); its hash names them
    # in CDN URLs and can never equal a generated one (those are 10 characters long).
    op.bulk_insert(teams, [{"hash": ANONYMOUS_TEAM_HASH, "account_id": None, "storage_bytes": 0,
                            "created_at": int(time.time())}])


def downgrade() -> None:
    for table in ("rate_counters", "usage_months", "media_tags", "media", "api_keys", "teams",
                  "accounts"):
        op.drop_table(table)
