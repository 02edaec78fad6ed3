"""The HTTP APIs the server speaks, one folder each; adding one is a folder and a line here.

The first dialect answers for paths no dialect owns (the host's `/ping`, `/health`, `/docs`).
"""

from __future__ import annotations

from flowdeck.server.dialect import Dialect
from flowdeck.server.dialects import flowdeck, forge, kestra, staging

DEFAULT_DIALECTS: tuple[Dialect, ...] = (
    kestra.DIALECT,
    staging.DIALECT,
    flowdeck.DIALECT,
    forge.DIALECT,
)
