"""Kestra's execution files over a real server: a file uploaded as a FILE input is downloaded,
measured and previewed by its URI; any other path is "no such file"."""

from __future__ import annotations

from helpers import apply
from live_server import LiveServer

EX = "/api/v1/main/executions"
FLOW = """
id: upload
namespace: acme.files
inputs:
  - {id: doc, type: FILE}
  - {id: note, type: STRING, required: false}
tasks:
  - {id: log, type: io.kestra.plugin.core.log.Log, message: got it}
"""
BODY = b"line one\nline two\nline three\n"


async def test_an_input_file_is_served_and_nothing_else(live: LiveServer) -> None:
    await apply(live.engine, FLOW)
    created = await live.client.post(f"{EX}/acme.files/upload", files={
        "doc": ("notes.txt", BODY, "text/plain")}, data={"note": "file:///etc/passwd"})
    assert created.status_code == 200, created.text
    execution_id, uri = created.json()["id"], created.json()["inputs"]["doc"]

    download = await live.client.get(f"{EX}/{execution_id}/file", params={"path": uri})
    assert download.status_code == 200 and download.content == BODY
    assert download.headers["content-type"] == "application/octet-stream"
    metas = await live.client.get(f"{EX}/{execution_id}/file/metas", params={"path": uri})
    assert metas.status_code == 200 and metas.json() == {"size": len(BODY)}, metas.text
    preview = await live.client.get(f"{EX}/{execution_id}/file/preview",
                                    params={"path": uri, "maxRows": 2})
    assert preview.status_code == 200, preview.text
    assert preview.json() == {"extension": "txt", "content": "line one\nline two\n",
                              "type": "TEXT"}

    other = await live.client.post(f"{EX}/acme.files/upload", files={
        "doc": ("other.txt", b"x", "text/plain")})
    refused = [uri.replace("notes.txt", "../../flowdeck.db"), "file:///etc/passwd",
               other.json()["inputs"]["doc"]]  # another execution's file
    for path in refused:
        for suffix in ("", "/metas", "/preview"):
            answer = await live.client.get(f"{EX}/{execution_id}/file{suffix}",
                                           params={"path": path})
            assert answer.status_code == 404, (path, suffix, answer.text)
    assert (await live.client.get(f"{EX}/{execution_id}/file")).status_code == 400
    assert (await live.client.get(f"{EX}/missing/file/metas",
                                  params={"path": uri})).status_code == 404
