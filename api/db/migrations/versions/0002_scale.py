"""A million media per team: 64-bit keys, namespace counters, indexes of live rows, removal leases.

Revision ID: 0002
Revises: 0001

- ``media.seq`` and ``media_tags.media_seq`` become BIGINT on PostgreSQL (a SERIAL's sequence
  stops at 2**31 - 1). SQLite's INTEGER PRIMARY KEY is its 64-bit rowid already. The ALTER
  rewrites both tables: on PostgreSQL about a second per million rows, holding their lock.
- ``namespace_totals`` holds each namespace's live count and bytes, built here from the rows
  and from now on changed in the transactions that change media; ``teams.storage_bytes`` is
  recounted from the rows too, so both start exact.
- Each list order has a partial index of LIVE rows, so that deleted rows (a namespace delete
  leaves its 50,000 rows marked until the originals are gone) are never walked:
  ``(team_id, sort_at, seq)`` for the plain list, the tag filters (probed per row through
  ``media_tags``' primary key) and cursors (a row-value bound ``(sort_at, seq) < (..)`` is an
  index condition); ``(team_id, namespace, sort_at, seq)`` for namespace and namespace + tags.
  The sweepers' indexes hold only the rows they look for: live rows with an expiry or a
  retention, and deleted rows whose original is not removed yet.
- ``media_tags.sort_at`` (the media's, kept equal by every write) and the index
  ``(team_id, tag, sort_at, media_seq)``: a tag's rows in list order, so a page filtered by a
  rare tag walks only them (``api.db.media_list`` chooses the walk). NOT NULL on PostgreSQL;
  on SQLite adding that constraint would copy the table, and every write sets it anyway.
- ``namespace_deletions``: a namespace delete in progress (its rows are marked in committed
  chunks; a delete that outlives its request is finished by the sweepers).
- ``removal_lease``: until when a deleter holds a deleted row's removal (originals, rendition
  purge). A process that dies holding it is replaced by the sweeper once it passes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LIVE = sa.text("deleted_at IS NULL")
PENDING_REMOVAL = sa.text("deleted_at IS NOT NULL AND original_removed = false")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE media_tags ALTER COLUMN media_seq TYPE BIGINT")
        op.execute("ALTER TABLE media ALTER COLUMN seq TYPE BIGINT")
        op.execute("ALTER SEQUENCE IF EXISTS media_seq_seq AS BIGINT")
    op.add_column("media", sa.Column("removal_lease", sa.BigInteger))
    for old in ("ix_media_team_order", "ix_media_team_namespace", "ix_media_expires_at",
                "ix_media_retain_until", "ix_media_deleted_pending"):
        op.drop_index(old, table_name="media")
    op.create_index("ix_media_live_order", "media", ["team_id", "sort_at", "seq"],
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_index("ix_media_live_namespace_order", "media",
                    ["team_id", "namespace", "sort_at", "seq"],
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_index("ix_media_live_expires_at", "media", ["expires_at"],
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_index("ix_media_live_retain_until", "media", ["retain_until"],
                    sqlite_where=LIVE, postgresql_where=LIVE)
    op.create_index("ix_media_pending_removal", "media", ["deleted_at"],
                    sqlite_where=PENDING_REMOVAL, postgresql_where=PENDING_REMOVAL)
    op.create_table(
        "namespace_totals",
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("media_count", sa.BigInteger, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "namespace_deletions",
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id"), primary_key=True),
        sa.Column("namespace", sa.String(64), primary_key=True),
        sa.Column("up_to_seq", sa.BigInteger, nullable=False),
        sa.Column("claimed_until", sa.BigInteger),
    )
    op.execute(
        "INSERT INTO namespace_totals (team_id, namespace, media_count, bytes) "
        "SELECT team_id, namespace, count(*), coalesce(sum(filesize), 0) FROM media "
        "WHERE deleted_at IS NULL AND namespace IS NOT NULL GROUP BY team_id, namespace"
    )
    op.execute(
        "UPDATE teams SET storage_bytes = coalesce((SELECT sum(filesize) FROM media "
        "WHERE media.team_id = teams.id AND media.deleted_at IS NULL), 0)"
    )
    op.add_column("media_tags", sa.Column("sort_at", sa.BigInteger))
    op.execute("UPDATE media_tags SET sort_at = (SELECT sort_at FROM media "
               "WHERE media.seq = media_tags.media_seq)")
    if postgres:
        op.execute("ALTER TABLE media_tags ALTER COLUMN sort_at SET NOT NULL")
    op.drop_index("ix_media_tags_team_tag", table_name="media_tags")
    op.create_index("ix_media_tags_order", "media_tags", ["team_id", "tag", "sort_at",
                                                          "media_seq"])
    if postgres:
        op.execute("ANALYZE media")
        op.execute("ANALYZE media_tags")


def downgrade() -> None:
    op.drop_table("namespace_deletions")
    op.drop_index("ix_media_tags_order", table_name="media_tags")
    op.create_index("ix_media_tags_team_tag", "media_tags", ["team_id", "tag", "media_seq"])
    op.drop_column("media_tags", "sort_at")
    op.drop_table("namespace_totals")
    for name in ("ix_media_live_order", "ix_media_live_namespace_order",
                 "ix_media_live_expires_at", "ix_media_live_retain_until",
                 "ix_media_pending_removal"):
        op.drop_index(name, table_name="media")
    op.create_index("ix_media_team_order", "media", ["team_id", "sort_at", "seq"])
    op.create_index("ix_media_team_namespace", "media", ["team_id", "namespace"])
    op.create_index("ix_media_expires_at", "media", ["expires_at"])
    op.create_index("ix_media_retain_until", "media", ["retain_until"])
    op.create_index("ix_media_deleted_pending", "media", ["deleted_at", "original_removed"])
    op.drop_column("media", "removal_lease")
