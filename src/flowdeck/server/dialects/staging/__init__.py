"""The staging dialect (spec 000): staging environments through webhook-triggered flows.

Spec 000 is served by Kestra, so its errors are Kestra's problem+json and its callers use the
same credentials; its webhook routes are open (the key in the path is the secret). `flowdeck
serve` installs the three bundled `dev.deployment` flows at start-up.
"""

from __future__ import annotations

from flowdeck.core.staging import NAMESPACE
from flowdeck.engine.engine import Engine
from flowdeck.server.auth import KESTRA_CREDENTIALS
from flowdeck.server.dialect import Dialect, DialectContext, Routes
from flowdeck.server.dialects.staging import routes as staging_routes
from flowdeck.server.dialects.staging.routes import reported_state
from flowdeck.server.problem import KESTRA_PROBLEMS


async def install_flows(engine: Engine) -> str | None:
    """Apply the bundled dev.deployment staging flows (idempotent: unchanged ones stay put).

    Returns a line naming the variables still to set: until a key is set, its webhook accepts
    nothing.
    """
    from flowdeck.engine.staging import bundled_flow_sources, missing_staging_keys

    for source in bundled_flow_sources():
        await engine.apply_flow(source)
    missing = missing_staging_keys(engine.trigger_envs)
    if not missing:
        return None
    return "staging webhooks refuse every call until these are set: " + ", ".join(missing)


def routes(context: DialectContext) -> list[Routes]:
    return [Routes(staging_routes.router)]


__all__ = ["DIALECT", "install_flows", "reported_state"]

DIALECT = Dialect(
    name="staging",
    prefixes=tuple(f"{prefix}/executions/webhook/{NAMESPACE}"
                   for prefix in staging_routes.PREFIXES),
    routes=routes,
    errors=KESTRA_PROBLEMS,
    identity=KESTRA_CREDENTIALS,
    open_routes=frozenset(staging_routes.OPEN_ROUTES),
    on_startup=install_flows,
)
