"""The server starts on loopback and answers its fixed routes."""

from __future__ import annotations

from live_server import LiveServer


async def test_ping_health_configs_and_unknown_route(live: LiveServer) -> None:
    assert (await live.client.get("/ping")).text == "pong"
    health = (await live.client.get("/health")).json()
    assert health["status"] == "UP"
    configs = (await live.client.get("/api/v1/configs")).json()
    assert configs["edition"] == "OSS" and configs["version"].startswith("2.")
    missing = await live.client.get("/api/v1/main/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    body = missing.json()
    assert body["status"] == 404 and body["instance"] == "/api/v1/main/nothing-here"
    assert "message" in body and "Traceback" not in missing.text
    assert missing.headers["X-Kestra-Edition"] == "OSS"
