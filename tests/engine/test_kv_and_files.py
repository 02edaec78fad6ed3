"""The namespace KV store (typed values, Kestra PUT bodies, TTL) and namespace files."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowdeck.core.clock import ManualClock
from flowdeck.core.errors import ExpiredError, NotFoundError, ValidationError
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.files import TMP_PREFIX, FileAttributes
from flowdeck.engine.kv import parse_literal

START = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def clocked(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Engine]:
    eng = await Engine.open(EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={}),
                            clock=clock)
    try:
        yield eng
    finally:
        await eng.close()


# == KV ==========================================================================================

TYPED_VALUES = [
    ("hello world", "STRING", "hello world"),
    ("", "STRING", ""),
    (42, "NUMBER", 42),
    (-3.5, "NUMBER", -3.5),
    (True, "BOOLEAN", True),
    (False, "BOOLEAN", False),
    ({"a": 1, "b": [True, None]}, "JSON", {"a": 1, "b": [True, None]}),
    ([1, "two"], "JSON", [1, "two"]),
    ([], "JSON", []),
    (datetime(2025, 6, 1, 12, 0, tzinfo=UTC), "DATETIME", "2025-06-01T12:00:00.000000Z"),
    (datetime(2025, 6, 1, 12, 0), "DATETIME", "2025-06-01T12:00:00.000000Z"),  # naive is UTC
    (date(2025, 6, 1), "DATE", "2025-06-01"),
    (timedelta(minutes=5), "DURATION", "PT5M"),
    (timedelta(days=1, seconds=1), "DURATION", "PT24H1S"),
]


@pytest.mark.parametrize(("value", "kv_type", "stored"), TYPED_VALUES)
async def test_put_infers_the_type_and_get_returns_the_stored_value(
        engine: Engine, value: Any, kv_type: str, stored: Any) -> None:
    entry = await engine.kv.put("t.kv", "key", value)
    assert (entry.type, entry.value, entry.revision) == (kv_type, stored, 1)
    got = await engine.kv.get("t.kv", "key")
    assert (got.type, got.value) == (kv_type, stored)
    assert type(got.value) is type(stored)
    assert got.detail() == {"type": kv_type, "value": stored, "revision": 1,
                            "updated": got.updated}


EXPLICIT_TYPES = [
    ("STRING", "42", "42"),
    ("STRING", 5, "5"),
    ("STRING", True, "true"),
    ("STRING", {"a": 1}, '{"a":1}'),
    ("STRING", date(2025, 6, 1), "2025-06-01"),
    ("NUMBER", "42", 42),
    ("NUMBER", " 2.5 ", 2.5),
    ("NUMBER", 7, 7),
    ("BOOLEAN", "true", True),
    ("BOOLEAN", False, False),
    ("JSON", '{"a": [1]}', {"a": [1]}),
    ("JSON", "[1, 2]", [1, 2]),
    ("JSON", {"k": "v"}, {"k": "v"}),
    ("JSON", "3", 3),
    ("DATETIME", "2025-06-01T12:00:00+02:00", "2025-06-01T10:00:00.000000Z"),
    ("DATETIME", "2025-06-01", "2025-06-01T00:00:00.000000Z"),
    ("DATE", "2025-06-01", "2025-06-01"),
    ("DATE", datetime(2025, 6, 1, 23, 0, tzinfo=UTC), "2025-06-01"),
    ("DURATION", "PT90M", "PT1H30M"),
    ("DURATION", "P2D", "PT48H"),
    ("duration", timedelta(seconds=30), "PT30S"),
]


@pytest.mark.parametrize(("kv_type", "value", "stored"), EXPLICIT_TYPES)
async def test_put_with_an_explicit_type_normalises_the_value(
        engine: Engine, kv_type: str, value: Any, stored: Any) -> None:
    entry = await engine.kv.put("t.kv", "key", value, kv_type=kv_type)
    assert (entry.type, entry.value) == (kv_type.upper(), stored)
    assert type(entry.value) is type(stored)
    got = await engine.kv.get("t.kv", "key")
    assert (got.type, got.value) == (kv_type.upper(), stored)


BAD_EXPLICIT = [
    ("NUMBER", "abc", "value: 'abc' is not a valid NUMBER"),
    ("NUMBER", "true", "value: 'true' is not a number"),
    ("NUMBER", "[1]", "value: '[1]' is not a number"),
    ("NUMBER", {"a": 1}, "value: {'a': 1} is not a number"),
    ("NUMBER", True, "value: True is not a number"),
    ("NUMBER", "NaN", "value: 'NaN' is not a finite number"),
    ("BOOLEAN", "yes", "value: 'yes' is not a valid BOOLEAN"),
    ("BOOLEAN", "1", "value: '1' is not true or false"),
    ("BOOLEAN", 0, "value: 0 is not true or false"),
    ("JSON", "{bad", "value: '{bad' is not a valid JSON"),
    ("JSON", {"a": float("nan")}, "value: NaN and Infinity are not storable numbers"),
    ("DATETIME", "soon", "value: 'soon' is not an ISO-8601 date-time"),
    ("DATETIME", 5, "value: 5 is not an ISO-8601 date-time"),
    ("DATE", "2025-13-01", "value: '2025-13-01' is not a date like 2025-06-01"),
    ("DURATION", "5m", "value: '5m' is not an ISO-8601 duration like PT5M"),
    ("DURATION", "P1M", "value: 'P1M' is not an ISO-8601 duration like PT5M"),
    ("STRING", None, "value: null is not a storable value"),
    ("TEXT", "x", "type: unknown KV type 'TEXT'"),
]


@pytest.mark.parametrize(("kv_type", "value", "message"), BAD_EXPLICIT)
async def test_values_that_do_not_fit_their_type_are_refused(
        engine: Engine, kv_type: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        await engine.kv.put("t.kv", "key", value, kv_type=kv_type)
    assert str(info.value) == message
    assert await engine.kv.find("t.kv", "key") is None


@pytest.mark.parametrize(("body", "kv_type", "value"), [
    ('"hello world"', "STRING", "hello world"),
    ('  "padded"\n', "STRING", "padded"),
    ('""', "STRING", ""),
    ("42", "NUMBER", 42),
    ("3.5", "NUMBER", 3.5),
    ("-1e3", "NUMBER", -1000.0),
    ("true", "BOOLEAN", True),
    ("false", "BOOLEAN", False),
    ('{"a":1}', "JSON", {"a": 1}),
    ("[1,2]", "JSON", [1, 2]),
    ('{"foo": "bar"}', "JSON", {"foo": "bar"}),
    ("2025-06-01T10:00:00Z", "DATETIME", "2025-06-01T10:00:00.000000Z"),
    ("2025-06-01T12:00:00+02:00", "DATETIME", "2025-06-01T10:00:00.000000Z"),
    ("2025-06-01T10:00:00.123Z", "DATETIME", "2025-06-01T10:00:00.123000Z"),
    ("2025-06-01", "DATE", "2025-06-01"),
    ("PT5M", "DURATION", "PT5M"),
    ("P1DT2H", "DURATION", "PT26H"),
    # Kestra's Ion reader takes a bare word (or a 'quoted symbol') as a string.
    ("hello", "STRING", "hello"),
    ("hello world\n", "STRING", "hello world"),
    ("'with spaces'", "STRING", "with spaces"),
    ("P1M", "STRING", "P1M"),
])
def test_parse_literal_types_kestra_put_bodies(body: str, kv_type: str, value: Any) -> None:
    assert parse_literal(body) == (kv_type, value)


@pytest.mark.parametrize(("body", "message"), [
    ("", "value: the value is empty; send a JSON value or a word"),
    ("  \n", "value: the value is empty; send a JSON value or a word"),
    ("2025-13-01", "value: invalid JSON value for: '2025-13-01'"),
    ("{a: 1}", "value: invalid JSON value for: '{a: 1}'"),
    ("\"unterminated", "value: invalid JSON value for: '\"unterminated'"),
    ("null", "value: null is not a storable value"),
    ("NaN", "value: NaN and Infinity are not storable numbers"),
    ("[1, Infinity]", "value: NaN and Infinity are not storable numbers"),
])
def test_parse_literal_refuses_what_is_not_a_literal(body: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_literal(body)
    assert str(info.value) == message


def test_parse_literal_never_raises_anything_but_validation_error() -> None:
    for body in ("9" * 5000, "[" * 100_000, "\x00", "\"unterminated", "1e999999"):
        with contextlib.suppress(ValidationError):
            parse_literal(body)


async def test_put_body_round_trip_through_parse_literal(engine: Engine) -> None:
    kind, value = parse_literal('"hello world"')
    await engine.kv.put("t.kv", "greeting", value, kv_type=kind)
    entry = await engine.kv.get("t.kv", "greeting")
    assert entry.detail()["type"] == "STRING" and entry.detail()["value"] == "hello world"


async def test_overwrite_increments_revision_and_keeps_creation_date(
        clocked: Engine, clock: ManualClock) -> None:
    first = await clocked.kv.put("t.kv", "k", 1, description="a counter")
    clock.advance(timedelta(minutes=1))
    second = await clocked.kv.put("t.kv", "k", "now text")
    clock.advance(timedelta(minutes=1))
    third = await clocked.kv.put("t.kv", "k", [1])
    assert [e.revision for e in (first, second, third)] == [1, 2, 3]
    assert [e.type for e in (first, second, third)] == ["NUMBER", "STRING", "JSON"]
    assert first.created == second.created == third.created == "2025-06-01T10:00:00.000000Z"
    assert third.updated == "2025-06-01T10:02:00.000000Z"
    assert first.description == "a counter" and third.description is None
    assert third.summary() == {
        "namespace": "t.kv", "key": "k", "description": None,
        "creationDate": "2025-06-01T10:00:00.000000Z",
        "updateDate": "2025-06-01T10:02:00.000000Z", "expirationDate": None, "revision": 3}


async def test_ttl_expiry(clocked: Engine, clock: ManualClock) -> None:
    kv = clocked.kv
    entry = await kv.put("t.kv", "short", "v", ttl=timedelta(minutes=5))
    await kv.put("t.kv", "forever", "w")
    assert entry.expires == "2025-06-01T10:05:00.000000Z"
    assert entry.summary()["expirationDate"] == "2025-06-01T10:05:00.000000Z"

    clock.advance(timedelta(minutes=4, seconds=59))
    assert (await kv.get("t.kv", "short")).value == "v"
    assert await kv.exists("t.kv", "short")
    assert [e.key for e in await kv.list("t.kv")] == ["forever", "short"]

    clock.advance(timedelta(seconds=1))  # exactly at the expiry instant it is gone
    expired = re.escape("key 'short' in namespace 't.kv' has expired")
    with pytest.raises(ExpiredError, match=expired):
        await kv.get("t.kv", "short")
    assert await kv.find("t.kv", "short") is None
    assert not await kv.exists("t.kv", "short")
    assert [e.key for e in await kv.list("t.kv")] == ["forever"]
    assert [e.key for e in await kv.list()] == ["forever"]
    assert (await kv.get("t.kv", "forever")).value == "w"

    # writing it again brings it back, without a TTL this time
    revived = await kv.put("t.kv", "short", "again")
    assert (revived.value, revived.expires, revived.revision) == ("again", None, 2)
    clock.advance(timedelta(days=365))
    assert (await kv.get("t.kv", "short")).value == "again"


@pytest.mark.parametrize("ttl", [timedelta(0), timedelta(seconds=-1)])
async def test_non_positive_ttl_is_refused(engine: Engine, ttl: timedelta) -> None:
    with pytest.raises(ValidationError, match=r"^ttl: must be a positive duration, got "):
        await engine.kv.put("t.kv", "k", "v", ttl=ttl)
    assert await engine.kv.find("t.kv", "k") is None


async def test_delete_returns_true_then_false(engine: Engine) -> None:
    await engine.kv.put("t.kv", "k", "v")
    assert await engine.kv.delete("t.kv", "k") is True
    assert await engine.kv.delete("t.kv", "k") is False
    assert await engine.kv.delete("t.kv", "never") is False
    with pytest.raises(NotFoundError, match=re.escape("no key 'k' in namespace 't.kv'")):
        await engine.kv.get("t.kv", "k")
    assert await engine.kv.find("t.kv", "k") is None


async def test_keys_are_per_namespace_and_listed_in_order(engine: Engine) -> None:
    await engine.kv.put("b.ns", "z", 1)
    await engine.kv.put("a.ns", "y", 2)
    await engine.kv.put("a.ns", "x", 3)
    await engine.kv.put("b.ns", "x", 4)
    assert [(e.namespace, e.key, e.value) for e in await engine.kv.list()] == [
        ("a.ns", "x", 3), ("a.ns", "y", 2), ("b.ns", "x", 4), ("b.ns", "z", 1)]
    assert [e.key for e in await engine.kv.list("b.ns")] == ["x", "z"]
    assert await engine.kv.list("c.ns") == []
    assert (await engine.kv.get("b.ns", "x")).value == 4


@pytest.mark.parametrize("key", ["", "-dash", ".dot", "/slash", "has space", "a\n", "tab\tkey",
                                 "ü", "a;b", "../x"])
async def test_invalid_keys_are_refused(engine: Engine, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        await engine.kv.put("t.kv", key, "v")
    assert str(info.value) == f"key: '{key}' must match ^[a-zA-Z0-9][a-zA-Z0-9._/-]*$"
    assert await engine.kv.list() == []


@pytest.mark.parametrize("key", ["a", "A1", "my.key", "my_key", "my-key", "dir/key", "9"])
async def test_valid_keys(engine: Engine, key: str) -> None:
    await engine.kv.put("t.kv", key, "v")
    assert (await engine.kv.get("t.kv", key)).value == "v"


async def test_kv_survives_a_restart(tmp_path: Path) -> None:
    settings = EngineSettings(data_dir=tmp_path / "data", scheduler=False, envs={})
    eng = await Engine.open(settings)
    try:
        await eng.kv.put("t.kv", "k", {"n": 1})
    finally:
        await eng.close()
    eng = await Engine.open(settings)
    try:
        entry = await eng.kv.get("t.kv", "k")
        assert (entry.type, entry.value, entry.revision) == ("JSON", {"n": 1}, 1)
    finally:
        await eng.close()


# == namespace files ===============================================================================

NS = "t.files"


def ns_dir(engine: Engine) -> Path:
    return engine.data_dir / "files" / NS


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under root with file contents, to prove nothing was written anywhere."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*")) if not p.name.startswith("flowdeck.db")}


def test_put_and_get_bytes_with_nested_directories(engine: Engine) -> None:
    files = engine.files
    files.put(NS, "/hello.txt", b"hello")
    files.put(NS, "scripts/etl/run.py", b"print('hi')\n")  # the leading slash is optional
    files.put(NS, "/bin.dat", bytes(range(256)))
    assert files.get(NS, "/hello.txt") == b"hello"
    assert files.get(NS, "hello.txt") == b"hello"
    assert files.get(NS, "/scripts/etl/run.py") == b"print('hi')\n"
    assert files.get(NS, "/bin.dat") == bytes(range(256))
    assert (ns_dir(engine) / "scripts" / "etl" / "run.py").read_bytes() == b"print('hi')\n"
    files.put(NS, "/hello.txt", b"replaced")
    assert files.get(NS, "/hello.txt") == b"replaced"
    files.put(NS, "/empty", b"")
    assert files.get(NS, "/empty") == b""
    # namespaces are separate
    with pytest.raises(NotFoundError, match=re.escape("no file '/hello.txt' in namespace 'other'")):
        files.get("other", "/hello.txt")


def test_list_dir_gives_direct_children_as_file_attributes(engine: Engine) -> None:
    files = engine.files
    assert files.list_dir(NS) == []  # a namespace with no files yet
    files.put(NS, "/b.txt", b"12345")
    files.put(NS, "/a/one.txt", b"1")
    files.put(NS, "/a/deep/two.txt", b"22")
    root = files.list_dir(NS)
    assert [(f.file_name, f.is_dir, f.size) for f in root] == [("a", True, 0), ("b.txt", False, 5)]
    assert files.list_dir(NS, "/") == root
    assert [f.file_name for f in files.list_dir(NS, "/a")] == ["deep", "one.txt"]
    assert [f.file_name for f in files.list_dir(NS, "a/deep/")] == ["two.txt"]

    doc = root[1].to_dict()
    assert set(doc) == {"fileName", "lastModifiedTime", "creationTime", "type", "size", "metadata"}
    stat = (ns_dir(engine) / "b.txt").stat()
    assert doc == {"fileName": "b.txt", "type": "File", "size": 5, "metadata": {},
                   "lastModifiedTime": int(stat.st_mtime * 1000),
                   "creationTime": int(stat.st_ctime * 1000)}
    assert 1_500_000_000_000 < doc["lastModifiedTime"] < 10_000_000_000_000  # epoch ms
    assert root[0].to_dict()["type"] == "Directory" and root[0].to_dict()["size"] == 0

    missing_dir = re.escape("no directory '/nope' in namespace 't.files'")
    with pytest.raises(NotFoundError, match=missing_dir):
        files.list_dir(NS, "/nope")
    with pytest.raises(ValidationError, match="is a file, not a directory"):
        files.list_dir(NS, "/b.txt")


def test_dotfiles_are_listed_but_temporary_files_never_are(engine: Engine) -> None:
    files = engine.files
    files.put(NS, "/.env", b"A=1")
    leftover = ns_dir(engine) / f"{TMP_PREFIX}half-written"  # what a crash mid-put leaves
    leftover.write_bytes(b"partial")
    assert [f.file_name for f in files.list_dir(NS)] == [".env"]
    assert files.search(NS, "") == ["/.env"]
    assert files.search(NS, "half") == []
    with pytest.raises(ValidationError, match="reserved"):
        files.put(NS, f"/{TMP_PREFIX}x", b"no")


def test_stats_of_files_and_directories(engine: Engine) -> None:
    files = engine.files
    files.put(NS, "/dir/data.csv", b"a,b\n1,2\n")
    st = files.stats(NS, "/dir/data.csv")
    assert isinstance(st, FileAttributes)
    assert (st.file_name, st.is_dir, st.size) == ("data.csv", False, 8)
    d = files.stats(NS, "/dir").to_dict()
    assert (d["fileName"], d["type"], d["size"]) == ("dir", "Directory", 0)
    assert files.stats(NS, "/").to_dict()["type"] == "Directory"
    with pytest.raises(NotFoundError, match="no file or directory '/missing' in namespace"):
        files.stats(NS, "/missing")


def test_move_files_and_directories(engine: Engine) -> None:
    files = engine.files
    files.put(NS, "/a.txt", b"A")
    files.put(NS, "/src/x/y.txt", b"Y")
    files.move(NS, "/a.txt", "/renamed/b.txt")
    assert files.get(NS, "/renamed/b.txt") == b"A"
    with pytest.raises(NotFoundError):
        files.get(NS, "/a.txt")
    files.move(NS, "/src", "/dst")
    assert files.get(NS, "/dst/x/y.txt") == b"Y"
    assert not (ns_dir(engine) / "src").exists()

    files.put(NS, "/c.txt", b"C")
    with pytest.raises(ValidationError, match=r"^to: '/c.txt' already exists$"):
        files.move(NS, "/renamed/b.txt", "/c.txt")
    assert files.get(NS, "/c.txt") == b"C" and files.get(NS, "/renamed/b.txt") == b"A"
    with pytest.raises(ValidationError, match="cannot move '/dst' into itself"):
        files.move(NS, "/dst", "/dst/inner")
    with pytest.raises(ValidationError, match="namespace root"):
        files.move(NS, "/", "/elsewhere")
    with pytest.raises(ValidationError, match="namespace root"):
        files.move(NS, "/c.txt", "/")
    with pytest.raises(ValidationError, match=r"'/_flows' is reserved"):
        files.move(NS, "/c.txt", "/_flows/c.yml")
    with pytest.raises(ValidationError, match="is a file, not a directory"):
        files.move(NS, "/renamed/b.txt", "/c.txt/b.txt")
    with pytest.raises(NotFoundError, match="no file or directory '/ghost'"):
        files.move(NS, "/ghost", "/z")
    assert sorted(files.search(NS, "")) == ["/c.txt", "/dst/x/y.txt", "/renamed/b.txt"]


def test_delete_prunes_empty_parents_but_never_the_root(engine: Engine) -> None:
    files = engine.files
    files.put(NS, "/keep.txt", b"k")
    files.put(NS, "/x/y/z/deep.txt", b"d")
    files.put(NS, "/x/sibling.txt", b"s")
    files.delete(NS, "/x/y/z/deep.txt")
    assert not (ns_dir(engine) / "x" / "y").exists()  # y and z were left empty: pruned
    assert (ns_dir(engine) / "x" / "sibling.txt").exists()  # x still has a file
    files.delete(NS, "x/sibling.txt")
    assert not (ns_dir(engine) / "x").exists()
    assert ns_dir(engine).is_dir() and files.get(NS, "/keep.txt") == b"k"
    files.delete(NS, "/keep.txt")
    assert ns_dir(engine).is_dir()  # the namespace directory itself stays
    assert files.list_dir(NS) == []

    files.put(NS, "/tree/a/1.txt", b"1")
    files.put(NS, "/tree/b/2.txt", b"2")
    files.delete(NS, "/tree")  # a directory goes with everything in it
    assert list(ns_dir(engine).iterdir()) == []

    for root in ("/", "", "//"):
        with pytest.raises(ValidationError, match="refusing to delete the namespace root"):
            files.delete(NS, root)
    with pytest.raises(NotFoundError, match=re.escape("no file or directory '/gone.txt'")):
        files.delete(NS, "/gone.txt")


def test_search_matches_file_names_case_insensitively(engine: Engine) -> None:
    files = engine.files
    for path in ("/Report.CSV", "/reports/q1.csv", "/reports/notes.txt", "/misc/csv/readme.md"):
        files.put(NS, path, b"x")
    assert files.search(NS, "csv") == ["/Report.CSV", "/reports/q1.csv"]
    assert files.search(NS, "REPORT") == ["/Report.CSV"]
    assert files.search(NS, "") == ["/Report.CSV", "/misc/csv/readme.md", "/reports/notes.txt",
                                    "/reports/q1.csv"]
    assert files.search("empty.ns", "x") == []


def test_missing_files_and_directories_are_not_found(engine: Engine) -> None:
    files = engine.files
    missing = re.escape("no file '/nope.txt' in namespace 't.files'")
    with pytest.raises(NotFoundError, match=missing):
        files.get(NS, "/nope.txt")
    files.put(NS, "/dir/f.txt", b"f")
    with pytest.raises(NotFoundError, match="no file '/dir' in namespace"):
        files.get(NS, "/dir")  # a directory is not a file


def test_reserved_flows_directory(engine: Engine) -> None:
    files = engine.files
    for path in ("/_flows/f.yml", "_flows/f.yml", "//_flows/x", "/_flows"):
        with pytest.raises(ValidationError, match=r"^path: '/_flows' is reserved$"):
            files.put(NS, path, b"id: f")
    with pytest.raises(ValidationError, match="reserved"):
        files.mkdir(NS, "/_flows/sub")
    files.put(NS, "/not_flows/_flows/ok.txt", b"only the top-level /_flows is reserved")
    assert files.search(NS, "ok") == ["/not_flows/_flows/ok.txt"]
    assert not (ns_dir(engine) / "_flows").exists()


def test_put_conflicts_with_directories_and_files(engine: Engine) -> None:
    files = engine.files
    files.put(NS, "/dir/f.txt", b"f")
    with pytest.raises(ValidationError, match=r"^path: is required$"):
        files.put(NS, "/", b"x")
    with pytest.raises(ValidationError, match=r"^path: '/dir' is a directory$"):
        files.put(NS, "/dir", b"x")
    with pytest.raises(ValidationError, match=re.escape("'/dir/f.txt' is a file, not a directory")):
        files.put(NS, "/dir/f.txt/child", b"x")
    with pytest.raises(ValidationError, match=r"^path: '/dir/f.txt' is a file$"):
        files.mkdir(NS, "/dir/f.txt")
    assert files.get(NS, "/dir/f.txt") == b"f"
    files.mkdir(NS, "/made/nested")
    files.mkdir(NS, "/made/nested")  # idempotent
    assert [(f.file_name, f.is_dir) for f in files.list_dir(NS, "/made")] == [("nested", True)]


@pytest.mark.parametrize("path", ["../x", "/a/../../b", "..", "a/..", "/../escape.txt",
                                  "./../x", "x\x00y", "/a/b/../../../c"])
def test_path_traversal_is_refused_and_writes_nothing(engine: Engine, path: str) -> None:
    files = engine.files
    files.put(NS, "/inside.txt", b"in")
    (engine.data_dir / "files" / "victim").mkdir(parents=True)
    (engine.data_dir / "files" / "victim" / "secret.txt").write_bytes(b"secret")
    before = snapshot(engine.data_dir.parent)

    attempts = [
        lambda: files.put(NS, path, b"pwned"),
        lambda: files.get(NS, path),
        lambda: files.stats(NS, path),
        lambda: files.list_dir(NS, path),
        lambda: files.mkdir(NS, path),
        lambda: files.delete(NS, path),
        lambda: files.move(NS, "/inside.txt", path),
        lambda: files.move(NS, path, "/moved.txt"),
    ]
    for attempt in attempts:
        with pytest.raises(ValidationError) as info:
            attempt()
        assert info.value.problems[0][0] == "path"
    assert snapshot(engine.data_dir.parent) == before
    assert not (engine.data_dir.parent / "b").exists()
    assert not (engine.data_dir / "files" / "x").exists()
    assert files.get(NS, "/inside.txt") == b"in"


@pytest.mark.parametrize("namespace", ["", ".", "..", "a/b", "../victim", "/abs", "nul\x00ns",
                                       "back\\slash"])
def test_invalid_namespaces_are_refused(engine: Engine, namespace: str) -> None:
    before = snapshot(engine.data_dir.parent)
    for attempt in (lambda: engine.files.put(namespace, "/f.txt", b"x"),
                    lambda: engine.files.get(namespace, "/f.txt"),
                    lambda: engine.files.list_dir(namespace),
                    lambda: engine.files.search(namespace, "")):
        with pytest.raises(ValidationError) as info:
            attempt()
        assert info.value.problems[0][0] == "namespace"
    assert snapshot(engine.data_dir.parent) == before


def test_names_with_dots_that_are_not_traversal_are_fine(engine: Engine) -> None:
    files = engine.files
    for path in ("/...", "/..hidden", "/a..b/c.txt", "/v1.2/notes"):
        files.put(NS, path, path.encode())
        assert files.get(NS, path) == path.encode()
    assert sorted(os.listdir(ns_dir(engine))) == ["...", "..hidden", "a..b", "v1.2"]
