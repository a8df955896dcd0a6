"""Queries on accounts, their teams and their API keys.

An account is an email address; it owns one team (media and quotas belong to the team) and
holds the plan and the verification state. A key belongs to both.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from api.db.engine import upsert
from api.db.schema import accounts, api_keys, media, teams
from api.rules.ids import new_team_hash

ANONYMOUS_TEAM_HASH = "anon"


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """What a request authenticated with a key may act as."""

    key_id: str
    key_status: str
    abilities: frozenset[str]
    account_id: int
    email: str
    verified: bool
    plan: str
    team_id: int
    team_hash: str


async def account_by_email(conn: AsyncConnection, email: str) -> RowMapping | None:
    result = await conn.execute(sa.select(accounts).where(accounts.c.email == email))
    return result.mappings().first()


async def ensure_account(conn: AsyncConnection, email: str, now: int) -> tuple[RowMapping, bool]:
    """The account for ``email`` and whether this call created it (race-safe on both backends)."""
    insert = upsert(conn, accounts).values(
        email=email, verified=False, plan="free", key_count=0, created_at=now,
    ).on_conflict_do_nothing(index_elements=["email"]).returning(accounts.c.id)
    created = (await conn.execute(insert)).scalar_one_or_none() is not None
    account = await account_by_email(conn, email)
    assert account is not None
    return account, created


async def team_of_account(conn: AsyncConnection, account_id: int, now: int) -> RowMapping:
    """The account's team, created on first use."""
    query = sa.select(teams).where(teams.c.account_id == account_id).order_by(teams.c.id).limit(1)
    team = (await conn.execute(query)).mappings().first()
    if team is not None:
        return team
    await conn.execute(upsert(conn, teams).values(
        hash=new_team_hash(), account_id=account_id, storage_bytes=0, created_at=now,
    ).on_conflict_do_nothing(index_elements=["account_id"]))
    team = (await conn.execute(query)).mappings().first()
    assert team is not None
    return team


async def anonymous_team(conn: AsyncConnection) -> RowMapping:
    query = sa.select(teams).where(teams.c.hash == ANONYMOUS_TEAM_HASH)
    team = (await conn.execute(query)).mappings().first()
    assert team is not None, "migration 0001 creates the anonymous team"
    return team


async def count_key(conn: AsyncConnection, account_id: int) -> None:
    """One more active key on the account (``imgpro accounts list`` shows the count).

    Only active keys are counted: a pending key is a request anyone can make for an address,
    so it must not take anything from the address's owner.
    """
    await conn.execute(sa.update(accounts).where(accounts.c.id == account_id)
                       .values(key_count=accounts.c.key_count + 1))


async def insert_key(conn: AsyncConnection, *, key_id: str, key_hash: str, account_id: int,
                     team_id: int, name: str, abilities: str, status: str, now: int) -> None:
    await conn.execute(sa.insert(api_keys).values(
        key_id=key_id, key_hash=key_hash, account_id=account_id, team_id=team_id, name=name,
        abilities=abilities, status=status, created_at=now,
    ))


async def key_owner(conn: AsyncConnection, key_hash: str) -> KeyOwner | None:
    query = (
        sa.select(
            api_keys.c.key_id, api_keys.c.status, api_keys.c.abilities, accounts.c.id,
            accounts.c.email, accounts.c.verified, accounts.c.plan, teams.c.id, teams.c.hash,
        )
        .select_from(api_keys.join(accounts, api_keys.c.account_id == accounts.c.id)
                     .join(teams, api_keys.c.team_id == teams.c.id))
        .where(api_keys.c.key_hash == key_hash)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return KeyOwner(
        key_id=row[0], key_status=row[1], abilities=frozenset(row[2].split(",")), account_id=row[3],
        email=row[4], verified=bool(row[5]), plan=row[6], team_id=row[7], team_hash=row[8],
    )


async def key_status(conn: AsyncConnection, key_id: str, account_id: int,
                     pending_since: int) -> str | None:
    """``active``, ``pending`` (activatable: created at or after ``pending_since``) or None
    (no such key of the account, or a pending key past its expiry)."""
    query = sa.select(api_keys.c.status, api_keys.c.created_at).where(
        api_keys.c.key_id == key_id, api_keys.c.account_id == account_id)
    row = (await conn.execute(query)).first()
    if row is None or (row[0] == "pending" and row[1] < pending_since):
        return None
    return str(row[0])


async def activate_key(conn: AsyncConnection, key_id: str, account_id: int,
                       pending_since: int) -> bool:
    """Turn a pending key created at or after ``pending_since`` active; False if there was
    none (already active, expired, or not this account's). A conditional UPDATE, so two
    clicks on the same link activate (and count) the key once."""
    result = await conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.account_id == account_id,
               api_keys.c.status == "pending", api_keys.c.created_at >= pending_since)
        .values(status="active")
        .returning(api_keys.c.id)
    )
    if result.scalar_one_or_none() is None:
        return False
    await count_key(conn, account_id)
    return True


async def drop_expired_pending_keys(conn: AsyncConnection, pending_since: int) -> int:
    """Delete pending keys created before ``pending_since``: their link no longer works."""
    result = await conn.execute(
        sa.delete(api_keys).where(api_keys.c.status == "pending",
                                  api_keys.c.created_at < pending_since))
    return int(result.rowcount or 0)


async def verify_account(conn: AsyncConnection, account_id: int, now: int) -> bool:
    """Mark the account verified and lift the retention of its existing media.

    Returns False when it was verified already (the link is idempotent). Media with their
    own ``ttl`` keep it: only the retention of unverified storage is lifted.
    """
    result = await conn.execute(
        sa.update(accounts)
        .where(accounts.c.id == account_id, accounts.c.verified.is_(False))
        .values(verified=True, verified_at=now)
        .returning(accounts.c.id)
    )
    changed = result.scalar_one_or_none() is not None
    team_ids = sa.select(teams.c.id).where(teams.c.account_id == account_id).scalar_subquery()
    await conn.execute(
        sa.update(media)
        .where(media.c.team_id.in_(team_ids), media.c.retain_until.is_not(None))
        .values(retain_until=None)
    )
    return changed


async def set_plan(conn: AsyncConnection, email: str, plan: str) -> bool:
    result = await conn.execute(
        sa.update(accounts).where(accounts.c.email == email).values(plan=plan)
        .returning(accounts.c.id)
    )
    return result.scalar_one_or_none() is not None


async def list_accounts(conn: AsyncConnection) -> list[RowMapping]:
    """Accounts with their team hash, key count and stored bytes, for the operator CLI."""
    query = (
        sa.select(accounts.c.email, accounts.c.plan, accounts.c.verified, accounts.c.key_count,
                  accounts.c.created_at, teams.c.hash.label("team_hash"),
                  teams.c.storage_bytes)
        .select_from(accounts.outerjoin(teams, teams.c.account_id == accounts.c.id))
        .order_by(accounts.c.id)
    )
    return list((await conn.execute(query)).mappings().all())


async def account_email(conn: AsyncConnection, account_id: int) -> str | None:
    query = sa.select(accounts.c.email).where(accounts.c.id == account_id)
    return (await conn.execute(query)).scalar_one_or_none()


async def team_account(conn: AsyncConnection, team_hash: str) -> RowMapping | None:
    """The team with its owner's email and plan (None for unknown or anonymous teams)."""
    query = (
        sa.select(teams.c.id.label("team_id"), accounts.c.email, accounts.c.plan)
        .select_from(teams.join(accounts, teams.c.account_id == accounts.c.id))
        .where(teams.c.hash == team_hash)
    )
    return (await conn.execute(query)).mappings().first()
