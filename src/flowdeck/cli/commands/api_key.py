"""`flowdeck api-key create|list|show|revoke`: the public API's keys.

Without `--url`/`--profile` the keys of the data dir are managed directly, beside a running
`flowdeck serve` or deck (as `flowdeck token` does: SQLite serialises the writes, and the
server sees a new or revoked key on its next request). With `--url` they are managed over the
server's admin routes (the caller needs the admin role). A key's secret is printed once, by
`create`; nothing else ever shows it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from flowdeck.cli.common import EXIT_OK, Context, Printer, UsageError
from flowdeck.cli.options import Commands
from flowdeck.cli.session import Access, embedded, open_session
from flowdeck.client.public import KeyInfo, KeySpec, NewKey, public_admin
from flowdeck.client.resolve import Candidate, is_fragment, matches, pick
from flowdeck.core.public import DEFAULT_USAGE_LIMIT, WEBHOOK_EVENTS
from flowdeck.core.timefmt import format_instant, parse_duration
from flowdeck.engine.public.keys import ApiKeyStore, open_api_key_store

ID_HELP = "a key id, or its first or last 8+ characters"
HEADERS = ["ID", "NAME", "PREFIX", "STATUS", "WORKFLOWS", "USAGE", "EXPIRES", "WEBHOOK",
           "LAST USED"]


class Keys(Protocol):
    async def list_keys(self) -> list[KeyInfo]: ...

    async def get_key(self, key_id: str) -> KeyInfo: ...

    async def create_key(self, spec: KeySpec) -> NewKey: ...

    async def revoke_key(self, key_id: str) -> KeyInfo: ...


class LocalKeys:
    """`Keys` over a data dir's key store, opened beside any engine that holds the data dir
    (SQLite serialises the writes; a server sees a new or revoked key on its next request)."""

    def __init__(self, store: ApiKeyStore) -> None:
        self._store = store

    def _now(self) -> datetime:
        return self._store.clock.now()

    async def list_keys(self) -> list[KeyInfo]:
        now = self._now()
        return [KeyInfo.from_dict(k.to_dict(now)) for k in await self._store.list_all()]

    async def get_key(self, key_id: str) -> KeyInfo:
        return KeyInfo.from_dict((await self._store.get(key_id)).to_dict(self._now()))

    async def create_key(self, spec: KeySpec) -> NewKey:
        created = await self._store.create(
            spec.name, workflows=list(spec.workflows), usage_limit=spec.usage_limit,
            expires_in=spec.expires_in, webhook_url=spec.webhook_url,
            webhook_events=list(spec.webhook_events) if spec.webhook_events is not None
            else None, webhook_secret=spec.webhook_secret)
        body = created.to_dict(self._now())
        return NewKey(KeyInfo.from_dict(body), str(body["key"]))

    async def revoke_key(self, key_id: str) -> KeyInfo:
        return KeyInfo.from_dict((await self._store.revoke(key_id)).to_dict(self._now()))


def register(commands: Commands) -> None:
    actions = commands.group("api-key", "create, list, show and revoke the public API's keys "
                             "(Bearer keys for /api/v1/public)")
    create = actions.add("create", "create a key and show its secret once", create_key,
                         json=True)
    create.add_argument("--name", required=True)
    create.add_argument("--workflow", action="append", default=[], metavar="ID",
                        help="an agent the key may execute (repeat; default: every agent)")
    create.add_argument("--usage-limit", type=int, default=DEFAULT_USAGE_LIMIT, metavar="N",
                        help=f"executions per calendar month, UTC (default "
                        f"{DEFAULT_USAGE_LIMIT})")
    create.add_argument("--expires-in", metavar="DURATION",
                        help="ISO-8601 duration, e.g. P90D or PT12H (default: never)")
    create.add_argument("--webhook-url", metavar="URL",
                        help="where the key's execution events are POSTed")
    create.add_argument("--webhook-events", metavar="E1,E2",
                        help=f"which events (default: all of {', '.join(WEBHOOK_EVENTS)})")
    secret = create.add_mutually_exclusive_group()
    secret.add_argument("--webhook-secret", metavar="SECRET",
                        help="signs each webhook (X-Webhook-Signature: sha256=HMAC)")
    secret.add_argument("--webhook-secret-env", metavar="VAR",
                        help="read the signing secret from this environment variable instead "
                        "(keeps it out of the shell history)")
    actions.add("list", "list keys (never their secrets)", list_keys, json=True)
    show = actions.add("show", "one key in full (never its secret)", show_key, json=True)
    show.add_argument("key_id", metavar="ID", help=ID_HELP)
    revoke = actions.add("revoke", "revoke a key at once, for good", revoke_key, json=True)
    revoke.add_argument("key_id", metavar="ID", help=ID_HELP)


@asynccontextmanager
async def keys_of(ctx: Context, access: Access) -> AsyncIterator[Keys]:
    """The data dir's key store, or the server's admin routes with `--url`/`--profile`."""
    if embedded(ctx):
        data_dir = ctx.settings.resolved_data_dir()
        try:
            async with open_api_key_store(data_dir) as store:
                yield LocalKeys(store)
        except OSError as exc:
            raise UsageError(f"data dir {data_dir} cannot be used: "
                             f"{exc.strerror or exc}") from None
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{data_dir / 'flowdeck.db'}: {exc}") from None
        return
    async with open_session(ctx, access) as session:
        yield public_admin(session.backend, session.capabilities)


def spec_from(ctx: Context) -> KeySpec:
    args = ctx.args
    expires_in = None
    if args.expires_in is not None:
        try:
            expires_in = parse_duration(args.expires_in)
        except ValueError as exc:
            raise UsageError(f"--expires-in: {exc}") from None
    events = None
    if args.webhook_events is not None:
        events = tuple(e.strip() for e in args.webhook_events.split(",") if e.strip())
    secret = args.webhook_secret
    if args.webhook_secret_env is not None:
        secret = os.environ.get(args.webhook_secret_env)
        if not secret:
            raise UsageError(f"--webhook-secret-env: ${args.webhook_secret_env} is not set")
    if (events or secret) and not args.webhook_url:
        raise UsageError("--webhook-events and --webhook-secret need --webhook-url")
    return KeySpec(name=args.name, workflows=tuple(args.workflow),
                   usage_limit=args.usage_limit, expires_in=expires_in,
                   webhook_url=args.webhook_url, webhook_events=events, webhook_secret=secret)


def when(value: datetime | None, never: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else never


def key_row(key: KeyInfo) -> list[str]:
    return [key.id, key.name, key.prefix + "…", key.status,
            ",".join(key.allowed_workflows) or "all",
            f"{key.usage_count}/{key.usage_limit}", when(key.expires_at, "never"),
            key.webhook_url or "-", when(key.last_used_at)]


def show_details(key: KeyInfo, p: Printer) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", key.id), ("name", key.name), ("prefix", key.prefix + "…"),
        ("status", key.status),
        ("workflows", ", ".join(key.allowed_workflows) or "every agent"),
        ("usage", f"{key.usage_count} of {key.usage_limit} this month"
                  + (f" ({key.usage_month})" if key.usage_month else "")),
        ("created", format_instant(key.created_at) if key.created_at else "-"),
        ("expires", format_instant(key.expires_at) if key.expires_at else "never"),
        ("revoked", format_instant(key.revoked_at) if key.revoked_at else "-"),
        ("last used", format_instant(key.last_used_at) if key.last_used_at else "never"),
        ("webhook", key.webhook_url or "none")]
    if key.webhook_url:
        rows.append(("events", ", ".join(key.webhook_events) or "all"))
        rows.append(("signed", "yes (secret set)" if key.has_webhook_secret else "no"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        p.line(f"{name.ljust(width)}  {value}")


async def resolve(keys: Keys, text: str) -> str:
    if not is_fragment(text):
        return text
    return pick("API key", text, (Candidate(k.id, f"{k.name}  {k.status}")
                                  for k in await keys.list_keys() if matches(k.id, text)))


async def create_key(ctx: Context) -> int:
    spec = spec_from(ctx)
    async with keys_of(ctx, Access.CHANGE) as keys:
        created = await keys.create_key(spec)
    key, p = created.key, ctx.out
    if ctx.json:
        p.json({**key.raw, "key": created.secret})
        return EXIT_OK
    scope = ("workflows " + ", ".join(key.allowed_workflows) if key.allowed_workflows
             else "every agent")
    expires = format_instant(key.expires_at) if key.expires_at else "never"
    p.line(f"API key {key.id} created: name {key.name!r}, {scope}, {key.usage_limit} "
           f"executions a month, expires {expires}")
    if key.webhook_url:
        p.line(f"webhook {key.webhook_url} ({', '.join(key.webhook_events)})"
               f"{', signed' if key.has_webhook_secret else ', unsigned'}")
    p.line(created.secret)
    p.line("it is shown only this once; send it as `Authorization: Bearer <key>` to "
           "/api/v1/public")
    return EXIT_OK


async def list_keys(ctx: Context) -> int:
    async with keys_of(ctx, Access.READ) as keys:
        found = await keys.list_keys()
    if ctx.json:
        ctx.out.json([k.raw for k in found])
    else:
        ctx.out.table(HEADERS, [key_row(k) for k in found])
    return EXIT_OK


async def show_key(ctx: Context) -> int:
    async with keys_of(ctx, Access.READ) as keys:
        key = await keys.get_key(await resolve(keys, ctx.args.key_id))
    if ctx.json:
        ctx.out.json(key.raw)
    else:
        show_details(key, ctx.out)
    return EXIT_OK


async def revoke_key(ctx: Context) -> int:
    async with keys_of(ctx, Access.CHANGE) as keys:
        key = await keys.revoke_key(await resolve(keys, ctx.args.key_id))
    if ctx.json:
        ctx.out.json(key.raw)
    else:
        ctx.out.line(f"API key {key.id} ({key.name}) revoked at "
                     f"{format_instant(key.revoked_at or datetime.now(UTC))}")
    return EXIT_OK

