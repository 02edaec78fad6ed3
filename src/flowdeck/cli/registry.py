"""Every command group of `flowdeck`, in the order `flowdeck --help` lists them.

A new group is one module in `flowdeck.cli.commands` with a `register(commands)` function, and
one line here.
"""

from __future__ import annotations

from flowdeck.cli.commands import (
    agents,
    api_key,
    approvals,
    demo,
    executions,
    flow,
    logs,
    passwd,
    run,
    serve,
    staging,
    token,
    webhooks,
)
from flowdeck.cli.options import CommandGroup

GROUPS: tuple[CommandGroup, ...] = (
    flow,
    run,
    executions,
    logs,
    approvals,
    staging,
    serve,
    token,
    passwd,
    demo,
    api_key,
    webhooks,
    agents,
)
