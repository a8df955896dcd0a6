"""``imgpro accounts set-plan EMAIL PLAN`` and ``imgpro accounts list``: the operator's tools.

Plans are not sold here: an operator sets them (the upgrade link's page says so). Both
commands work on the same database as the server (``IMGPRO_DATABASE_URL`` / the data dir),
applying migrations first so they also work before the first ``imgpro serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from sqlalchemy.engine import RowMapping

from api.db import Database
from api.db.accounts import list_accounts, set_plan
from api.rules.plans import PLAN_NAMES
from api.settings import Settings


def add_accounts_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = sub.add_parser("accounts", help="list accounts, set an account's plan")
    commands = accounts.add_subparsers(dest="accounts_command", required=True)
    set_plan_cmd = commands.add_parser("set-plan", help="set the plan of the account with EMAIL")
    set_plan_cmd.add_argument("email")
    set_plan_cmd.add_argument("plan", choices=PLAN_NAMES)
    set_plan_cmd.set_defaults(func=set_plan_command)
    list_cmd = commands.add_parser("list", help="list accounts with plan, keys and storage")
    list_cmd.add_argument("--json", action="store_true", help="one JSON object per line")
    list_cmd.set_defaults(func=list_command)


async def _open() -> Database:
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await db.migrate()
    return db


def set_plan_command(args: argparse.Namespace) -> int:
    async def run() -> bool:
        db = await _open()
        try:
            async with db.write() as conn:
                return await set_plan(conn, args.email.strip().lower(), args.plan)
        finally:
            await db.close()

    if not asyncio.run(run()):
        print(f"no account with email {args.email}", file=sys.stderr)
        return 1
    print(f"{args.email}: plan {args.plan}")
    return 0


def list_command(args: argparse.Namespace) -> int:
    async def run() -> list[RowMapping]:
        db = await _open()
        try:
            async with db.read() as conn:
                return await list_accounts(conn)
        finally:
            await db.close()

    rows = asyncio.run(run())
    if args.json:
        for row in rows:
            print(json.dumps({**row, "verified": bool(row["verified"])}), flush=True)
        return 0
    print(f"{'email':40} {'plan':6} {'verified':8} {'keys':>4} {'stored MB':>10}  created")
    for row in rows:
        created = datetime.fromtimestamp(row["created_at"], UTC).strftime("%Y-%m-%d")
        stored = (row["storage_bytes"] or 0) / 1024 / 1024
        print(f"{row['email']:40} {row['plan']:6} {'yes' if row['verified'] else 'no':8} "
              f"{row['key_count']:>4} {stored:>10.1f}  {created}")
    return 0
