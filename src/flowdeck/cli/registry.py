"""Every command group of `flowdeck`, in the order `flowdeck --help` lists them.

A new group is one module in `flowdeck.cli.commands` with a `register(commands)` function, and
one line here.
"""

from __future__ import annotations

from flowdeck.cli.commands import (
    approvals,
    demo,
    deploy,
    executions,
    flow,
    logs,
    passwd,
    pipeline,
    release,
    run,
    serve,
    staging,
    token,
)
from flowdeck.cli.options import CommandGroup

GROUPS: tuple[CommandGroup, ...] = (
    flow,
    run,
    executions,
    logs,
    approvals,
    staging,
    release,
    deploy,
    pipeline,
    serve,
    token,
    passwd,
    demo,
)
