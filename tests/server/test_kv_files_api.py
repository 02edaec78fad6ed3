"""KV store and namespace-file routes over a real server (§3.8, §3.10 of the Kestra notes)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.core.timefmt import parse_instant
from flowdeck.engine.engine import Engine, EngineSettings
from live_server import LiveServer, start_server, stop_server

API = "/api/v1/main"
NS = "company.team"


async def put_kv(live: LiveServer, key: str, body: str | bytes, *, ns: str = NS,
                 content_type: str = "text/plain", **headers: str) -> httpx.Response:
    return await live.client.put(f"{API}/namespaces/{ns}/kv/{key}", content=body,
                                 headers={"content-type": content_type, **headers})


# -- KV ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "kv_type", "value"), [
    ('"hello world"', "STRING", "hello world"),
    ('"2025-06-01"', "STRING", "2025-06-01"),
    ("42", "NUMBER", 42),
    ("3.5", "NUMBER", 3.5),
    ("-7", "NUMBER", -7),
    ("true", "BOOLEAN", True),
    ("false", "BOOLEAN", False),
    ('{"foo":"bar"}', "JSON", {"foo": "bar"}),
    ("[1,2,3]", "JSON", [1, 2, 3]),
    ("2025-06-01", "DATE", "2025-06-01"),
    ("2025-06-01T10:15:30Z", "DATETIME", "2025-06-01T10:15:30.000000Z"),
    ("2025-06-01T12:15:30+02:00", "DATETIME", "2025-06-01T10:15:30.000000Z"),
    ("PT5M", "DURATION", "PT5M"),
    ("P1D", "DURATION", "PT24H"),
])
async def test_kv_typing_round_trip(live: LiveServer, body: str, kv_type: str,
                                    value: object) -> None:
    for content_type in ("text/plain", "application/json"):
        put = await put_kv(live, "k", body, content_type=content_type)
        assert put.status_code == 200, put.text
        assert put.content == b""
        got = await live.client.get(f"{API}/namespaces/{NS}/kv/k")
        assert got.status_code == 200
        detail = got.json()
        assert detail["type"] == kv_type and detail["value"] == value
        assert isinstance(detail["revision"], int) and detail["updated"].endswith("Z")


async def test_kv_revision_delete_and_errors(live: LiveServer) -> None:
    assert (await put_kv(live, "counter", "1")).status_code == 200
    assert (await put_kv(live, "counter", "2")).status_code == 200
    detail = (await live.client.get(f"{API}/namespaces/{NS}/kv/counter")).json()
    assert detail == {"type": "NUMBER", "value": 2, "revision": 2, "updated": detail["updated"]}

    # An unquoted text/plain body is a string, as Kestra's Ion reader takes a bare word.
    word = await live.client.put(f"{API}/namespaces/{NS}/kv/word", content=b"hello",
                                 headers={"Content-Type": "text/plain"})
    assert word.status_code == 200, word.text
    detail = (await live.client.get(f"{API}/namespaces/{NS}/kv/word")).json()
    assert (detail["type"], detail["value"]) == ("STRING", "hello")
    bad = await put_kv(live, "word", "{broken")
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert "JSON" in bad.json()["detail"] and "broken" in bad.json()["detail"]
    for body in ("", "null", "{broken", b"\xff\xfe"):
        refused = await put_kv(live, "x", body)
        assert refused.status_code == 422, body
    assert (await put_kv(live, "bad key!", '"v"')).status_code == 422
    assert (await put_kv(live, "k", '"v"', ns="bad ns")).status_code == 422

    missing = await live.client.get(f"{API}/namespaces/{NS}/kv/nope")
    assert missing.status_code == 404 and missing.json()["status"] == 404

    deleted = await live.client.delete(f"{API}/namespaces/{NS}/kv/counter")
    assert deleted.status_code == 200 and deleted.json() is True
    again = await live.client.delete(f"{API}/namespaces/{NS}/kv/counter")
    assert again.status_code == 200 and again.json() is False
    assert (await live.client.get(f"{API}/namespaces/{NS}/kv/counter")).status_code == 404


async def test_kv_bulk_delete_and_listings(live: LiveServer) -> None:
    for ns, key in [(NS, "a"), (NS, "b"), (NS, "c"), ("company", "shared"), ("company", "a"),
                    ("company.team.sub", "deep"), ("other", "z")]:
        assert (await put_kv(live, key, f'"{ns}:{key}"', ns=ns)).status_code == 200

    listed = (await live.client.get(f"{API}/namespaces/{NS}/kv")).json()
    assert [e["key"] for e in listed] == ["a", "b", "c"]
    entry = listed[0]
    assert entry["namespace"] == NS and entry["expirationDate"] is None
    assert {"creationDate", "updateDate", "revision", "description"} <= set(entry)

    # 2.0 listing: paged, filtered, sorted.
    page = (await live.client.get(f"{API}/kv", params={
        "filters[namespace][EQUALS]": NS, "size": 2, "page": 1, "sort": "key:desc"})).json()
    assert page["total"] == 3 and [e["key"] for e in page["results"]] == ["c", "b"]
    page2 = (await live.client.get(f"{API}/kv", params={
        "filters[namespace][EQUALS]": NS, "size": 2, "page": 2, "sort": "key:desc"})).json()
    assert [e["key"] for e in page2["results"]] == ["a"]
    everything = (await live.client.get(f"{API}/kv", params={"size": 100})).json()
    assert everything["total"] == 7
    prefixed = (await live.client.get(f"{API}/kv", params={
        "filters[namespace][PREFIX]": "company", "size": 100})).json()
    assert {e["namespace"] for e in prefixed["results"]} == {"company", NS, "company.team.sub"}
    by_key = (await live.client.get(f"{API}/kv", params={"filters[q][EQUALS]": "sha"})).json()
    assert [e["key"] for e in by_key["results"]] == ["shared"]
    assert (await live.client.get(f"{API}/kv", params={"sort": "nope:asc"})).status_code == 400
    assert (await live.client.get(f"{API}/kv",
                                  params={"filters[color][EQUALS]": "x"})).status_code == 400

    # Inheritance: parents only, nearest parent first for a shared key.
    inherited = (await live.client.get(f"{API}/namespaces/company.team.sub/kv/inheritance"))
    assert inherited.status_code == 200
    pairs = [(e["namespace"], e["key"]) for e in inherited.json()]
    assert pairs == [(NS, "a"), (NS, "b"), (NS, "c"), ("company", "shared")]
    assert (await live.client.get(f"{API}/namespaces/company/kv/inheritance")).json() == []

    bulk = await live.client.request("DELETE", f"{API}/namespaces/{NS}/kv",
                                     json={"keys": ["a", "c", "missing"]})
    assert bulk.status_code == 200 and bulk.json() == {"keys": ["a", "c"]}
    assert [e["key"] for e in (await live.client.get(f"{API}/namespaces/{NS}/kv")).json()] \
        == ["b"]
    bad_bulk = await live.client.request("DELETE", f"{API}/namespaces/{NS}/kv",
                                         json={"keys": "a"})
    assert bad_bulk.status_code == 422

    # Pre-0.23 tenant-less paths serve the same store.
    legacy = await live.client.get(f"/api/v1/namespaces/{NS}/kv/b")
    assert legacy.status_code == 200 and legacy.json()["value"] == f"{NS}:b"


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[tuple[LiveServer, ManualClock]]:
    clock = ManualClock()
    engine = await Engine.open(EngineSettings(data_dir=tmp_path / "data", scheduler=False,
                                              envs={}), clock=clock)
    server, task, url = await start_server(engine)
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield LiveServer(engine, url, client), clock
    finally:
        await client.aclose()
        await stop_server(server, task)
        await engine.close()


async def test_kv_ttl_expiry(clocked: tuple[LiveServer, ManualClock]) -> None:
    live, clock = clocked
    assert (await put_kv(live, "session", '"abc"', ttl="PT1H")).status_code == 200
    assert (await put_kv(live, "forever", '"x"')).status_code == 200
    listed = (await live.client.get(f"{API}/namespaces/{NS}/kv")).json()
    expiring = next(e for e in listed if e["key"] == "session")
    assert parse_instant(expiring["expirationDate"]) == clock.now() + timedelta(hours=1)

    clock.advance(timedelta(minutes=59))
    assert (await live.client.get(f"{API}/namespaces/{NS}/kv/session")).status_code == 200
    clock.advance(timedelta(minutes=2))
    expired = await live.client.get(f"{API}/namespaces/{NS}/kv/session")
    assert expired.status_code == 410 and expired.json()["status"] == 410
    assert [e["key"] for e in (await live.client.get(f"{API}/namespaces/{NS}/kv")).json()] \
        == ["forever"]

    bad = await put_kv(live, "k", '"v"', ttl="one hour")
    assert bad.status_code == 400 and "ttl" in bad.json()["detail"]
    negative = await put_kv(live, "k", '"v"', ttl="-PT1H")
    assert negative.status_code == 422 and "ttl" in negative.json()["detail"]


def kestra_client(url: str) -> Any:
    """kestrapy 2.0.3 imports `regex` without declaring it; skip if it cannot load."""
    pytest.importorskip("regex", reason="kestrapy 2.0.3 needs the undeclared 'regex' package")
    from kestrapy.kestra_client import KestraClient

    return KestraClient(host=url, timeout=10)


async def test_kv_with_kestrapy(live: LiveServer) -> None:
    client = kestra_client(live.url)

    def scenario() -> None:
        for body, kv_type in [('"hello world"', "STRING"), ("42", "NUMBER"),
                              ('{"foo":"bar"}', "JSON"), ("[1,2,3]", "JSON")]:
            client.kv.set_key_value(NS, "sdk", "main", body)
            detail = client.kv.key_value(NS, "sdk", "main")
            assert str(detail.type.value if hasattr(detail.type, "value") else detail.type) \
                == kv_type
        assert client.kv.delete_key_value(NS, "sdk", "main") is True
        assert client.kv.delete_key_value(NS, "sdk", "main") is False
        client.kv.set_key_value(NS, "listed", "main", '"v"')
        paged = client.kv.list_all_keys("main", page=1, size=10)
        assert paged.total == 1 and paged.results[0].key == "listed"

    await asyncio.to_thread(scenario)


# -- namespace files -----------------------------------------------------------------------


def files_url(ns: str = NS) -> str:
    return f"{API}/namespaces/{ns}/files"


async def upload(live: LiveServer, path: str, content: bytes, filename: str = "file",
                 ns: str = NS) -> httpx.Response:
    return await live.client.post(files_url(ns), params={"path": path},
                                  files={"fileContent": (filename, content)})


async def test_files_upload_download_list_stats(live: LiveServer) -> None:
    assert (await upload(live, "/scripts/run.py", b"print('hi')\n")).status_code == 200
    assert (await upload(live, "notes/readme.md", b"# notes")).status_code == 200  # no /
    raw = await live.client.post(files_url(), params={"path": "/raw.txt"}, content=b"raw body",
                                 headers={"content-type": "text/plain"})
    assert raw.status_code == 200 and raw.content == b""

    got = await live.client.get(files_url(), params={"path": "/scripts/run.py"})
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.content == b"print('hi')\n"
    assert (await live.client.get(files_url(), params={"path": "raw.txt"})).content \
        == b"raw body"
    missing = await live.client.get(files_url(), params={"path": "/nope.txt"})
    assert missing.status_code == 404
    assert (await live.client.get(files_url(), params={"path": "/scripts"})).status_code == 404

    root = (await live.client.get(f"{files_url()}/directory")).json()
    assert [(a["fileName"], a["type"]) for a in root] == [
        ("notes", "Directory"), ("raw.txt", "File"), ("scripts", "Directory")]
    scripts = (await live.client.get(f"{files_url()}/directory",
                                     params={"path": "/scripts"})).json()
    assert len(scripts) == 1
    attrs = scripts[0]
    assert attrs["fileName"] == "run.py" and attrs["type"] == "File" and attrs["size"] == 12
    assert attrs["metadata"] == {}
    assert isinstance(attrs["lastModifiedTime"], int) and attrs["lastModifiedTime"] > 10**12
    # Spec 001's "List Files": GET /files without a path lists the root.
    assert (await live.client.get(files_url())).json() == root
    assert (await live.client.get(f"{files_url('empty.ns')}/directory")).json() == []

    stats = (await live.client.get(f"{files_url()}/stats",
                                   params={"path": "/scripts/run.py"})).json()
    assert stats["fileName"] == "run.py" and stats["size"] == 12 and stats["type"] == "File"
    dir_stats = (await live.client.get(f"{files_url()}/stats",
                                       params={"path": "/scripts"})).json()
    assert dir_stats["type"] == "Directory"
    empty_root = (await live.client.get(f"{files_url('empty.ns')}/stats")).json()
    assert empty_root["type"] == "Directory"
    assert (await live.client.get(f"{files_url()}/stats",
                                  params={"path": "/nope"})).status_code == 404

    revisions = await live.client.get(f"{files_url()}/revisions",
                                      params={"path": "/scripts/run.py"})
    assert revisions.json() == [{"revision": 1}]

    # Overwrite in place.
    assert (await upload(live, "/scripts/run.py", b"v2")).status_code == 200
    assert (await live.client.get(files_url(), params={"path": "/scripts/run.py"})).content \
        == b"v2"
    no_part = await live.client.post(files_url(), params={"path": "/x"},
                                      files={"other": ("f", b"1")})
    assert no_part.status_code == 422 and "fileContent" in no_part.json()["detail"]
    assert (await live.client.post(files_url(), files={"fileContent": ("f", b"1")})
            ).status_code == 400


async def test_files_directory_move_delete_search(live: LiveServer) -> None:
    made = await live.client.post(f"{files_url()}/directory", params={"path": "/a/b/c"})
    assert made.status_code == 200
    assert (await upload(live, "/a/b/c/data.csv", b"x,y\n")).status_code == 200
    assert (await upload(live, "/a/top.csv", b"1")).status_code == 200
    assert (await upload(live, "/other.txt", b"2")).status_code == 200

    found = (await live.client.get(f"{files_url()}/search", params={"q": ".csv"})).json()
    assert found == ["/a/b/c/data.csv", "/a/top.csv"]
    assert (await live.client.get(f"{files_url()}/search", params={"q": "zzz"})).json() == []

    moved = await live.client.put(files_url(), params={"from": "/a/top.csv", "to": "/b/top.csv"})
    assert moved.status_code == 200
    assert (await live.client.get(files_url(), params={"path": "/b/top.csv"})).content == b"1"
    assert (await live.client.get(files_url(), params={"path": "/a/top.csv"})).status_code \
        == 404
    assert (await live.client.put(files_url(), params={"from": "/nope", "to": "/x"})
            ).status_code == 404
    assert (await live.client.put(files_url(), params={"from": "/b/top.csv",
                                                       "to": "/other.txt"})).status_code == 422

    # Deleting the only file of a deep folder prunes the folders it leaves empty.
    deleted = await live.client.delete(files_url(), params={"path": "a/b/c/data.csv"})
    assert deleted.status_code == 200
    root = [a["fileName"] for a in (await live.client.get(f"{files_url()}/directory")).json()]
    assert root == ["b", "other.txt"]
    assert (await live.client.delete(files_url(), params={"path": "/b"})).status_code == 200
    assert (await live.client.delete(files_url(), params={"path": "/b"})).status_code == 404
    assert (await live.client.delete(files_url(), params={"path": "/"})).status_code == 400


async def test_files_zip_export_and_flow_import(live: LiveServer) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("lib/util.py", "X = 1\n")
        z.writestr("config.json", "{}")
    assert (await upload(live, "/", archive.getvalue(), filename="bundle.zip")).status_code \
        == 200
    assert (await live.client.get(files_url(), params={"path": "/lib/util.py"})).content \
        == b"X = 1\n"

    flow = f"id: imported\nnamespace: {NS}\ntasks:\n  - id: hi\n    type: " \
           "io.kestra.plugin.core.log.Log\n    message: hi\n"
    assert (await upload(live, "/_flows/imported.yml", flow.encode())).status_code == 200
    assert live.engine.get_flow(NS, "imported").id == "imported"
    elsewhere = flow.replace(NS, "elsewhere")
    assert (await upload(live, "/_flows/x.yml", elsewhere.encode())).status_code == 422
    assert (await upload(live, "/_flows/notes.txt", b"x")).status_code == 422
    assert (await live.client.post(f"{files_url()}/directory",
                                   params={"path": "/_flows/sub"})).status_code == 422

    exported = await live.client.get(f"{files_url()}/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/octet-stream"  # as Kestra answers
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert sorted(names) == ["_flows/imported.yml", "config.json", "lib/util.py"]

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr("../../escape.txt", "nope")
    refused = await upload(live, "/", evil.getvalue(), filename="evil.zip")
    assert refused.status_code == 422
    assert (await upload(live, "/", b"not a zip", filename="x.zip")).status_code == 422
    truncated = archive.getvalue()[: len(archive.getvalue()) // 2]
    assert (await upload(live, "/", truncated, filename="t.ZIP")).status_code == 422
    assert (await live.client.get(files_url(), params={"path": "/ok.txt"})).status_code == 404


@pytest.mark.parametrize("path", [
    "../outside.txt", "/../../etc/passwd", "a/../../x", "..", "a/%2e%2e/x",
    "a/\x00b",
])
async def test_files_path_traversal_is_refused(live: LiveServer, path: str,
                                               tmp_path: Path) -> None:
    responses = [
        await upload(live, path, b"pwned"),
        await live.client.get(files_url(), params={"path": path}),
        await live.client.get(f"{files_url()}/directory", params={"path": path}),
        await live.client.get(f"{files_url()}/stats", params={"path": path}),
        await live.client.post(f"{files_url()}/directory", params={"path": path}),
        await live.client.delete(files_url(), params={"path": path}),
        await live.client.put(files_url(), params={"from": path, "to": "/x"}),
    ]
    for response in responses:
        if path == "a/%2e%2e/x":  # a literal '%2e%2e' folder name is harmless
            assert response.status_code in (200, 404, 422)
            continue
        assert response.status_code in (400, 422), (response.request.method, path,
                                                    response.status_code)
        assert b"pwned" not in response.content
    namespace_dir = tmp_path / "data" / "files" / NS
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"pwned"]
    assert all(p.is_relative_to(namespace_dir) for p in written), written


async def test_files_with_kestrapy(live: LiveServer) -> None:
    client = kestra_client(live.url)

    def scenario() -> None:
        client.files.create_namespace_file(NS, "/sdk/hello.txt", "main", b"hello")
        assert client.files.file_content(NS, "/sdk/hello.txt", "main") == b"hello"
        listed = client.files.list_namespace_directory_files(NS, "main", "/sdk")
        assert [f.file_name for f in listed] == ["hello.txt"]
        client.files.delete_file_directory(NS, "/sdk/hello.txt", "main")
        assert client.files.list_namespace_directory_files(NS, "main") == []

    await asyncio.to_thread(scenario)
