"""Every command group of `flowdeck`, in the order `flowdeck --help` lists them.

A new group is one module in `flowdeck.cli.commands` with a `register(commands)` function, and
one line here.
"""

from __future__ import annotations

from flowdeck.cli.commands import (
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
    workflow,
)
from flowdeck.cli.options import CommandGroup

GROUPS: tuple[CommandGroup, ...] = (
    flow,
    run,
    executions,
    logs,
    approvals,
    staging,
    workflow,
    serve,
    token,
    passwd,
    demo,
)
