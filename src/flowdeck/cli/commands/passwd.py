"""`flowdeck passwd`: the argon2id hash for `[server] basic_password_hash`."""

from __future__ import annotations

import sys

from flowdeck.cli.common import EXIT_OK, Context, UsageError
from flowdeck.cli.options import Commands


def register(commands: Commands) -> None:
    passwd = commands.command("passwd", "hash a password for [server] basic_password_hash",
                              hash_password, remote=False)
    passwd.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of stdin (scripts)")


async def hash_password(ctx: Context) -> int:
    from flowdeck.server.auth import hash_password

    if ctx.args.stdin:
        password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    else:
        import getpass

        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Again: ")
        except EOFError:
            raise UsageError("no password given (use --stdin to pipe one in)") from None
        if password != again:
            raise UsageError("the two passwords differ; nothing was hashed")
    if not password:
        raise UsageError("the password is empty")
    ctx.out.line(hash_password(password))
    return EXIT_OK
