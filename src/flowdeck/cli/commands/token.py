"""`flowdeck token create|list|revoke`: Bearer tokens for `flowdeck serve`, kept in the data
dir's database beside (not instead of) a running engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands
from flowdeck.client.resolve import Candidate, is_fragment, matches, pick
from flowdeck.core.timefmt import format_instant, parse_duration
from flowdeck.engine.keys import TOKEN_ROLES, ApiToken, TokenStore, open_token_store


def register(commands: Commands) -> None:
    actions = commands.group("token", "create, list and revoke API tokens (Bearer) for "
                             "`flowdeck serve`", remote=False)
    create = actions.add("create", "create a token and show it once", create_token, json=True)
    create.add_argument("--role", required=True, choices=TOKEN_ROLES)
    create.add_argument("--name")
    create.add_argument("--expires-in", metavar="DURATION",
                        help="ISO-8601 duration, e.g. P30D or PT12H (default: never)")
    actions.add("list", "list tokens (never their secrets)", list_tokens, json=True)
    revoke = actions.add("revoke", "revoke a token at once", revoke_token)
    revoke.add_argument("token_id", metavar="ID",
                        help="a token id, or its first or last 8+ characters")


def token_row(token: ApiToken, now: datetime) -> list[str]:
    def day(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"

    return [token.id, token.name, token.role, token.prefix + "…", token.status(now),
            day(token.created_at), day(token.expires_at) if token.expires_at else "never",
            day(token.last_used_at)]


async def create_token(ctx: Context) -> int:
    args, p = ctx.args, ctx.out
    expires_in = None
    if args.expires_in is not None:
        try:
            expires_in = parse_duration(args.expires_in)
        except ValueError as exc:
            raise UsageError(f"--expires-in: {exc}") from None

    async def create(tokens: TokenStore) -> int:
        now = datetime.now(UTC)
        token, secret = await tokens.create(args.role, args.name, expires_in)
        if ctx.json:
            p.json({**token.to_dict(now), "token": secret})
            return EXIT_OK
        expiry = format_instant(token.expires_at) if token.expires_at else "never"
        p.line(f"token {token.id} created: name {token.name!r}, role {token.role}, "
               f"expires {expiry}")
        p.line(secret)
        p.line("it is shown only this once; send it as `Authorization: Bearer <token>`")
        return EXIT_OK

    return await with_tokens(ctx, create)


async def list_tokens(ctx: Context) -> int:
    async def show(tokens: TokenStore) -> int:
        now = datetime.now(UTC)
        items = await tokens.list_all()
        if ctx.json:
            ctx.out.json([t.to_dict(now) for t in items])
        else:
            ctx.out.table(["ID", "NAME", "ROLE", "PREFIX", "STATUS", "CREATED", "EXPIRES",
                           "LAST USED"], [token_row(t, now) for t in items])
        return EXIT_OK

    return await with_tokens(ctx, show)


async def revoke_token(ctx: Context) -> int:
    async def revoke(tokens: TokenStore) -> int:
        wanted = ctx.args.token_id
        if is_fragment(wanted):
            wanted = pick("token", wanted, (
                Candidate(t.id, f"{t.name}  {t.role}") for t in await tokens.list_all()
                if matches(t.id, wanted)))
        token = await tokens.revoke(wanted)
        ctx.out.line(f"token {token.id} ({token.name}) revoked")
        return EXIT_OK

    return await with_tokens(ctx, revoke)


async def with_tokens(ctx: Context, work: Callable[[TokenStore], Awaitable[int]]) -> int:
    data_dir = ctx.settings.resolved_data_dir()
    try:
        async with open_token_store(data_dir) as tokens:
            return await work(tokens)
    except OSError as exc:
        raise UsageError(f"data dir {data_dir} cannot be used: {exc.strerror or exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{data_dir / 'flowdeck.db'}: {exc}") from None
