"""Malformed input is a 4xx naming the field, never a 500: deep JSON, huge numbers, lone
surrogates, in every JSON body the mounted dialects read, over a real loopback server."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowdeck.core.errors import ValidationError
from flowdeck.server.jsonbody import MAX_DEPTH, MAX_DIGITS, JsonRefused, parse_json
from helpers import apply, wait_for_state
from live_server import LiveServer

API = "/api/v1/main"
DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
HUGE = b'{"comment": "x", "n": ' + b"9" * 5000 + b"}"
SURROGATE = b'{"comment": "a\\ud800b", "decidedBy": "\\udfff"}'

GATED = textwrap.dedent("""
    id: gated
    namespace: t.hostile
    inputs:
      - id: note
        type: STRING
        required: false
    tasks:
      - id: gate
        type: flowdeck.approval.Request
        title: Ship it?
    """)
PAUSED = textwrap.dedent("""
    id: paused
    namespace: t.hostile
    tasks:
      - id: wait
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - id: answer
            type: STRING
            required: false
    """)
QUICK = textwrap.dedent("""
    id: quick
    namespace: t.hostile
    tasks:
      - id: hi
        type: io.kestra.plugin.core.log.Log
        message: hi
    """)


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    return body


def named(body: dict[str, Any]) -> list[str]:
    return [e["path"] for e in body.get("errors", [])]


@pytest.fixture
async def targets(live: LiveServer) -> dict[str, str]:
    """One path per JSON-reading route: creating, resuming, labelling, deciding, bulk."""
    engine = live.engine
    for source in (GATED, PAUSED, QUICK):
        await apply(engine, source)
    gated = await engine.create_execution("t.hostile", "gated")
    await wait_for_state(engine, gated.id, "PAUSED")
    paused = await engine.create_execution("t.hostile", "paused")
    await wait_for_state(engine, paused.id, "PAUSED")
    done = await engine.create_execution("t.hostile", "quick")
    await wait_for_state(engine, done.id, "SUCCESS")
    approval = (await engine.approvals.list("pending", execution_id=gated.id))[0]
    return {
        "create": f"{API}/executions/t.hostile/quick",
        "resume": f"{API}/executions/{paused.id}/actions/resume",
        "labels": f"{API}/executions/{done.id}/actions/labels",
        "approve": f"{API}/approvals/{approval.id}/approve",
        "reject": f"{API}/approvals/{approval.id}/reject",
        "bulk": f"{API}/approvals/bulk-approve",
        "kv-delete": f"{API}/namespaces/t.hostile/kv",
    }


ROUTES = ["create", "resume", "labels", "approve", "reject", "bulk", "kv-delete"]


@pytest.mark.parametrize("route", ROUTES)
async def test_deep_json_is_a_422_naming_the_body(live: LiveServer, targets: dict[str, str],
                                                  route: str) -> None:
    method = "DELETE" if route == "kv-delete" else "POST"
    for body in (DEEP_LIST, DEEP_OBJECT):
        response = await live.client.request(method, targets[route], content=body,
                                             headers={"content-type": "application/json"})
        assert response.status_code == 422, response.text
        found = problem(response)
        assert "nested too deeply" in found["detail"]
        assert any(p.startswith("body") for p in named(found)), found
    assert (await live.client.get("/ping")).text == "pong"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_5000_digit_number_is_a_422_naming_its_field(
        live: LiveServer, targets: dict[str, str], route: str) -> None:
    method = "DELETE" if route == "kv-delete" else "POST"
    body = HUGE if route != "labels" else b'[{"key": "k", "value": ' + b"7" * 5000 + b"}]"
    response = await live.client.request(method, targets[route], content=body,
                                         headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    found = problem(response)
    assert "5000 digits" in found["detail"]
    assert named(found) == (["body[0].value"] if route == "labels" else ["body.n"])


async def test_lone_surrogates_in_a_decision_are_stored_as_replacement_characters(
        live: LiveServer, targets: dict[str, str]) -> None:
    response = await live.client.post(targets["approve"], content=SURROGATE,
                                      headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["comment"] == "a\ufffdb"
    # The store still takes writes afterwards.
    again = await live.client.post(f"{API}/executions/t.hostile/quick")
    assert again.status_code == 200, again.text


async def test_lone_surrogates_in_inputs_query_and_path_are_never_a_500(
        live: LiveServer) -> None:
    await apply(live.engine, GATED)
    created = await live.client.post(f"{API}/executions/t.hostile/gated",
                                     content=b'{"note": "\\ud83d"}',
                                     headers={"content-type": "application/json"})
    assert created.status_code == 200, created.text
    assert created.json()["inputs"]["note"] == "\ufffd"
    for path in (f"{API}/executions/search?q=%ED%A0%80", f"{API}/executions/%ED%A0%80",
                 f"{API}/flows/%ED%A0%80/x", f"{API}/logs/search?q=%ED%A0%80",
                 f"{API}/namespaces/%ED%A0%80/kv", f"{API}/approvals?executionId=%ED%A0%80"):
        response = await live.client.get(path)
        assert response.status_code < 500, (path, response.text)


async def test_a_webhook_body_past_the_bounds_is_refused_not_kept(live: LiveServer) -> None:
    await apply(live.engine, textwrap.dedent("""
        id: hook
        namespace: t.hostile
        tasks:
          - id: hi
            type: io.kestra.plugin.core.log.Log
            message: hi
        triggers:
          - id: web
            type: io.kestra.plugin.core.trigger.Webhook
            key: the-key
        """))
    path = f"{API}/executions/webhook/t.hostile/hook/the-key"
    response = await live.client.post(path, content=DEEP_OBJECT,
                                      headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    plain = await live.client.post(path, content=b"not json {", headers={
        "content-type": "text/plain"})
    assert plain.status_code == 200, plain.text


# -- the parser itself -------------------------------------------------------------------------


def test_the_parser_names_the_field_and_keeps_what_is_within_bounds() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    with pytest.raises(JsonRefused) as refused:
        parse_json(b'{"a": [0, ' + b"1" * (MAX_DIGITS + 1) + b"]}")
    assert refused.value.problems[0][0] == "body.a[1]"
    with pytest.raises(JsonRefused):
        parse_json(b'{"x": NaN}')
    with pytest.raises(JsonRefused):
        parse_json(b'{"x": 1e999}')
    within = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(within) is not None
    with pytest.raises(JsonRefused):
        parse_json(b"[" + within + b"]")
    with pytest.raises(ValidationError, match="not UTF-8"):
        parse_json(b'"\xff"')
    assert parse_json('{"\\ud800": "\\udc00x"}') == {"\ufffd": "\ufffdx"}


JSON_LEAVES = (st.none() | st.booleans() | st.integers() | st.text()
               | st.floats(allow_nan=False, allow_infinity=False))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4),
                           max_leaves=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_property_valid_json_round_trips(value: Any) -> None:
    raw = json.dumps(value)
    assert parse_json(raw.encode()) == json.loads(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(
    alphabet=st.sampled_from(list('[]{}",:0123456789-.eE \\ud800truefalsnNIfiy')),
    max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_property_any_bytes_parse_or_are_refused_with_a_named_field(raw: bytes) -> None:
    try:
        parse_json(raw)
    except ValidationError as exc:
        assert exc.problems and exc.problems[0][0].startswith("body")


# -- a store that cannot write -----------------------------------------------------------------


async def test_a_store_that_cannot_write_is_a_503_with_retry_after(live: LiveServer) -> None:
    engine = live.engine
    writer = engine.store._writer
    assert writer is not None
    await engine.store.flush()
    pages = await writer.execute_fetchall("PRAGMA page_count")
    await writer.execute(f"PRAGMA max_page_count = {next(iter(pages))[0]}")
    try:
        response = await live.client.put(f"{API}/namespaces/t.hostile/kv/big",
                                         content=json.dumps("x" * 200_000))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
        assert "disk is full" in problem(response)["detail"]
    finally:
        await writer.execute("PRAGMA max_page_count = 1073741823")


def test_every_dialect_renders_storage_unavailable_as_503() -> None:
    from flowdeck.core.errors import StorageUnavailable
    from flowdeck.server.dialects import DEFAULT_DIALECTS
    from flowdeck.server.errors import engine_error

    error = engine_error(StorageUnavailable("the database cannot take writes"), "/x")
    for dialect in DEFAULT_DIALECTS:
        response = dialect.errors(error)
        assert response.status_code == 503, dialect.name
        assert response.headers["retry-after"] == "5", dialect.name
        assert b"the database cannot take writes" in bytes(response.body), dialect.name


# -- namespaces in file routes -------------------------------------------------------------------


async def test_an_export_of_a_non_latin1_namespace_names_it_in_rfc5987(
        live: LiveServer) -> None:
    namespace = "t.\u212a"  # KELVIN SIGN: the namespace pattern takes it as a "k"
    await apply(live.engine, QUICK.replace("t.hostile", namespace))
    response = await live.client.get(f"{API}/namespaces/{namespace}/files/export")
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition == ("attachment; filename=\"t.__files.zip\"; "
                           "filename*=UTF-8''t.%E2%84%AA_files.zip")
    plain = await live.client.get(f"{API}/namespaces/t.plain/files/export")
    assert plain.headers["content-disposition"] == 'attachment; filename="t.plain_files.zip"'


@pytest.mark.parametrize("namespace", ["%E2%98%83", "a%20b", "-dash", "%ED%A0%80", "a%3Bb"])
async def test_file_routes_refuse_what_is_not_a_namespace(live: LiveServer,
                                                         namespace: str) -> None:
    for method, path in (("GET", "files/export"), ("GET", "files/directory"),
                         ("GET", "files?path=/a"), ("POST", "files?path=/a"),
                         ("DELETE", "files?path=/a")):
        response = await live.client.request(method, f"{API}/namespaces/{namespace}/{path}")
        assert response.status_code == 422, (method, path, response.text)
        assert named(problem(response)) == ["namespace"]
