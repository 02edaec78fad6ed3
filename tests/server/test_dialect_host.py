"""The server hosts dialects: a throwaway one, defined in a test module, needs nothing else.

`gadgets_dialect.GADGETS` is mounted beside the default dialects by passing it to `create_app`;
every error under its prefix (401/403/404/405/413/422/429/500, raised by its routes, by FastAPI,
by the body limit, by the auth layer or for a path nothing serves) comes in its own body, while
Kestra's paths keep their problem+json; its role, open route and rate limit apply.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.engine.keys import TokenStore
from flowdeck.server.app import ServerOptions
from flowdeck.server.dialects import DEFAULT_DIALECTS
from helpers import open_engine
from live_server import start_server, stop_server
from server.gadgets_dialect import GADGETS, LIMIT, PREFIX

PROBLEM = "application/problem+json"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_040.0  # the start of a one-minute window

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def gadgets_server(tmp_path: Path, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    engine = await open_engine(tmp_path / "data")
    options = ServerOptions(auth_required=True, max_body_bytes=64 * 1024,
                            extra={"gadget_clock": clock})
    server, task, url = await start_server(engine, options,
                                           dialects=[*DEFAULT_DIALECTS, GADGETS])
    client = httpx.AsyncClient(base_url=url, timeout=30)
    client.app = server.config.app  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


def key(role: str) -> dict[str, str]:
    return {"X-Gadget-Key": f"k-{role}"}


def fault(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"fault"} and body["fault"]["status"] == status, body
    assert "Traceback" not in response.text
    return body["fault"]


async def test_a_throwaway_dialect_answers_every_error_in_its_own_body(tmp_path: Path) -> None:
    async with gadgets_server(tmp_path, Clock()) as api:
        assert fault(await api.get(f"{PREFIX}/items"), 401)["text"] == "unknown gadget key"
        assert "www-authenticate" not in (await api.get(f"{PREFIX}/items")).headers
        assert fault(await api.get(f"{PREFIX}/nowhere"), 401)  # unrouted: who asks first
        assert (await api.get(f"{PREFIX}/items", headers=key("viewer"))).json() == []
        assert "operator" in fault(await api.post(f"{PREFIX}/items", json={},
                                                  headers=key("viewer")), 403)["text"]
        invalid = fault(await api.post(f"{PREFIX}/items", json={"name": "cog"},
                                       headers=key("operator")), 422)
        assert "weight" in invalid["text"]
        added = await api.post(f"{PREFIX}/items", json={"name": "cog", "weight": 3},
                               headers=key("operator"))
        assert added.status_code == 201 and added.json() == {"added": "cog",
                                                               "by": "operator-gadgeteer"}
        assert fault(await api.get(f"{PREFIX}/nowhere", headers=key("admin")), 404)
        assert fault(await api.delete(f"{PREFIX}/items", headers=key("admin")), 405)
        assert fault(await api.post(f"{PREFIX}/items", content=b"x" * (65 * 1024),
                                    headers=key("admin")), 413)
        assert fault(await api.get(f"{PREFIX}/boom", headers=key("admin")), 500)["text"] == (
            "an unexpected error occurred; see the server log")
        # Kestra's paths, on the same server, keep their problem+json.
        kestra = await api.get("/api/v1/main/flows/search")
        assert kestra.status_code == 401 and kestra.headers["content-type"] == PROBLEM
        assert kestra.headers["www-authenticate"] == 'Basic realm="Kestra"'
        assert (await api.get("/api/v1/main/nowhere")).headers["content-type"] == PROBLEM


async def test_its_open_route_service_role_and_rate_limit(tmp_path: Path) -> None:
    clock = Clock()
    async with gadgets_server(tmp_path, clock) as api:
        assert (await api.get(f"{PREFIX}/hooks/anything")).json() == {"kind": "open"}
        # `service` is no rung of the ladder: an admin may not calibrate, a service key may.
        assert fault(await api.put(f"{PREFIX}/calibration", headers=key("admin")), 403)
        calibrated = await api.put(f"{PREFIX}/calibration", headers=key("service"))
        assert calibrated.json() == {"calibrated_by": "service-gadgeteer"}
        assert fault(await api.get(f"{PREFIX}/items", headers=key("service")), 403)

        clock.now += 60  # a fresh window for the viewer key
        window_end_ms = int((clock.now // 60 + 1) * 60 * 1000)
        for left in range(LIMIT - 1, -1, -1):
            answer = await api.get(f"{PREFIX}/items", headers=key("viewer"))
            assert answer.status_code == 200
            assert answer.headers["x-ratelimit-limit"] == str(LIMIT)
            assert answer.headers["x-ratelimit-remaining"] == str(left)
            assert answer.headers["x-ratelimit-reset"] == str(window_end_ms)
        refused = await api.get(f"{PREFIX}/items", headers=key("viewer"))
        assert fault(refused, 429)["text"] == "slow down, gadgeteer"
        assert refused.headers["retry-after"] == "60"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        # Per key: another caller has its own allowance; a new window starts afresh.
        assert (await api.get(f"{PREFIX}/items", headers=key("operator"))).status_code == 200
        clock.now += 60
        assert (await api.get(f"{PREFIX}/items", headers=key("viewer"))).status_code == 200
        # Kestra's routes carry no limit.
        engine = api.app.state.engine  # type: ignore[attr-defined]
        _, secret = await TokenStore(engine.store, engine.clock).create("viewer")
        ping = await api.get("/api/v1/main/flows/search",
                             headers={"Authorization": f"Bearer {secret}"})
        assert ping.status_code == 200 and "x-ratelimit-limit" not in ping.headers


async def test_a_dialect_route_without_a_rule_or_listing_stops_the_app(tmp_path: Path) -> None:
    import dataclasses

    from fastapi import APIRouter

    from flowdeck.server.app import create_app
    from flowdeck.server.dialect import DialectContext, Routes

    def bare(context: DialectContext) -> list[Routes]:
        router = APIRouter()
        router.add_api_route(f"{PREFIX}/bare", lambda: {}, methods=["GET"])
        return [Routes(router)]

    unlisted = dataclasses.replace(GADGETS, name="unlisted", open_routes=frozenset())
    undeclared = dataclasses.replace(GADGETS, name="undeclared", routes=bare)
    engine = await open_engine(tmp_path / "data")
    try:
        with pytest.raises(ValueError, match="does not list it as open"):
            create_app(engine, dialects=[unlisted])
        with pytest.raises(ValueError, match="declares no access"):
            create_app(engine, dialects=[undeclared])
    finally:
        await engine.close()
