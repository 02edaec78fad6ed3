"""Each task type doing real work: ETL rows in SQLite and files, a dulwich clone, a
configured training command, shell-quoted arguments."""

from __future__ import annotations

import contextlib
import csv
import functools
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dulwich import porcelain

from flowctl.conftest import flowctl_extra
from flowctl.flowctl_helpers import generic, run, workflow
from flowdeck.engine.engine import Engine
from helpers import open_engine


def etl(name: str, source: str, target: str, **payload: Any) -> dict[str, Any]:
    return {"name": name, "type": "etl", "max_retries": 0,
            "payload": {"source_url": source, "target_url": target, **payload}}


async def test_etl_normalizes_a_csv_into_sqlite_then_out_to_json_and_csv(
        engine: Engine, files: Path) -> None:
    (files / "bucket" / "people.csv").write_text(
        "First Name,emailAddress, Home-City \n  Ada ,ADA@example.org,\n Bob,, Paris \n")
    db = files / "out" / "warehouse.db"
    done = await run(engine, workflow(
        etl("load", "s3://bucket/people.csv", f"sqlite://{db}#people",
            transformation="normalize"),
        etl("to-json", f"sqlite://{db}#people", f"file://{files}/out/people.json",
            ) | {"dependencies": ["load"]},
        etl("to-csv", f"file://{files}/out/people.json", f"file://{files}/out/people.csv",
            ) | {"dependencies": ["to-json"]}))
    assert done.status == "completed", [t.error for t in done.tasks]
    assert [(t.result or {}).get("rows_written") for t in done.tasks] == [2, 2, 2]
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(people)")]
        rows = conn.execute("SELECT * FROM people ORDER BY rowid").fetchall()
    assert columns == ["first_name", "email_address", "home_city"]
    assert rows == [("Ada", "ADA@example.org", None), ("Bob", None, "Paris")]
    expected = [{"first_name": "Ada", "email_address": "ADA@example.org", "home_city": None},
                {"first_name": "Bob", "email_address": None, "home_city": "Paris"}]
    assert json.loads((files / "out" / "people.json").read_text()) == expected
    with open(files / "out" / "people.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == [
            {k: v or "" for k, v in row.items()} for row in expected]


async def test_etl_appends_in_one_transaction_and_adds_columns(engine: Engine,
                                                               files: Path) -> None:
    db = files / "db.sqlite"
    (files / "bucket" / "a.json").write_text(json.dumps([{"id": 1, "tags": ["x"]}]))
    (files / "bucket" / "b.json").write_text(json.dumps([{"id": 2, "ok": True}]))
    done = await run(engine, workflow(
        etl("a", "s3://bucket/a.json", "postgres://db/items"),
        etl("b", "s3://bucket/b.json", "postgres://db/items") | {"dependencies": ["a"]}))
    assert done.status == "completed", [t.error for t in done.tasks]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id, tags, ok FROM items ORDER BY id").fetchall() == [
            (1, '["x"]', None), (2, None, 1)]


async def test_etl_refusals_name_the_limit_or_the_setting(tmp_path: Path, files: Path) -> None:
    extra = flowctl_extra(files)
    extra["etl"].update(max_rows=2, max_bytes=200)
    engine = await open_engine(tmp_path / "data", extra={"flowctl": extra})
    try:
        (files / "bucket" / "three.json").write_text(json.dumps([{"n": i} for i in range(3)]))
        (files / "bucket" / "big.csv").write_text("n\n" + "1234567890\n" * 30)
        done = await run(engine, workflow(
            etl("rows", "s3://bucket/three.json", f"file://{files}/x.json"),
            etl("bytes", "s3://bucket/big.csv", f"file://{files}/y.json"),
            etl("scheme", "gs://bucket/data.csv", f"file://{files}/z.json"),
            etl("missing", f"file://{files}/nope.csv", f"file://{files}/z.json"),
            max_concurrency=4))
        errors = {t.name: t.error or "" for t in done.tasks}
        assert "more than 2 rows" in errors["rows"] and "[flowctl.etl] max_rows" in errors["rows"]
        assert "larger than 200 bytes" in errors["bytes"]
        assert "[flowctl.etl] max_bytes" in errors["bytes"]
        assert "scheme 'gs'" in errors["scheme"]
        assert "[flowctl.etl] locations" in errors["scheme"]
        assert errors["missing"] == f"no such file: {files}/nope.csv"
        assert not (files / "x.json").exists()
    finally:
        await engine.close()


@contextlib.contextmanager
def file_server(root: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_etl_reads_over_http(engine: Engine, files: Path) -> None:
    (files / "served").mkdir()
    (files / "served" / "rows.json").write_text(json.dumps([{"a": 1}, {"a": 2}]))
    with file_server(files / "served") as base:
        done = await run(engine, workflow(
            etl("get", f"{base}/rows.json", f"file://{files}/copy.csv"),
            etl("404", f"{base}/missing.json", f"file://{files}/never.csv")))
    get, missing = done.tasks
    assert get.result is not None and get.result["rows_read"] == 2
    assert (files / "copy.csv").read_text().splitlines() == ["a", "1", "2"]
    assert missing.error is not None and "answered 404" in missing.error


def make_repo(path: Path) -> tuple[str, str]:
    """A repository with `main` (a.txt) and `feature` (a.txt, b.txt); their commits."""
    repo = porcelain.init(str(path))
    who = b"Test <test@example.org>"
    (path / "a.txt").write_text("on main\n")
    porcelain.add(repo, [str(path / "a.txt")])
    main = porcelain.commit(repo, message=b"main", author=who, committer=who)
    (path / "b.txt").write_text("on feature\n")
    porcelain.add(repo, [str(path / "b.txt")])
    feature = porcelain.commit(repo, message=b"feature", author=who, committer=who)
    repo.refs[b"refs/heads/feature"] = feature
    repo.refs[b"refs/heads/main"] = main
    repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    repo.close()
    return main.decode(), feature.decode()


async def test_ci_clones_a_branch_and_runs_the_command_there(engine: Engine,
                                                             tmp_path: Path) -> None:
    main, feature = make_repo(tmp_path / "repo")
    done = await run(engine, workflow(
        {"name": "test-feature", "type": "ci", "payload": {
            "repo_url": str(tmp_path / "repo"), "branch": "feature",
            "command": "cat b.txt && echo \"env=$FLOWCTL_ENVIRONMENT\"",
            "environment": "test"}},
        {"name": "test-main", "type": "ci", "payload": {
            "repo_url": str(tmp_path / "repo"), "command": "test ! -e b.txt && cat a.txt"}},
        {"name": "no-branch", "type": "ci", "max_retries": 0, "payload": {
            "repo_url": str(tmp_path / "repo"), "branch": "nope", "command": "true"}}))
    by_name = {t.name: t for t in done.tasks}
    assert by_name["test-feature"].result == {"exit_code": 0, "output": "on feature\nenv=test",
                                              "commit": feature, "branch": "feature"}
    assert by_name["test-main"].result == {"exit_code": 0, "output": "on main",
                                           "commit": main, "branch": None}
    error = by_name["no-branch"].error or ""
    assert error.startswith(f"cannot clone {tmp_path / 'repo'} at branch 'nope'")


async def test_ml_training_gets_the_payload_on_stdin_and_in_its_environment(
        tmp_path: Path, files: Path) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    command = (f"cat > {seen}/stdin.json; printf '%s' \"$FLOWCTL_PAYLOAD\" > {seen}/env.json; "
               "echo \"model=$MODEL_DIR\"")
    extra = flowctl_extra(files, task_types={"ml_training": {
        "command": command, "environment": {"MODEL_DIR": "/models"}}})
    engine = await open_engine(tmp_path / "data", extra={"flowctl": extra})
    try:
        payload = {"model_name": "fraud_detector", "algorithm": "xgboost",
                   "hyperparameters": {"max_depth": 6, "learning_rate": 0.1}, "note": "é ✓"}
        done = await run(engine, workflow({"name": "train", "type": "ml_training",
                                           "payload": payload}))
        assert done.status == "completed", done.tasks[0].error
        assert json.loads((seen / "stdin.json").read_text()) == payload
        assert json.loads((seen / "env.json").read_text()) == payload
        assert done.tasks[0].result == {"exit_code": 0, "output": "model=/models"}
    finally:
        await engine.close()


async def test_generic_quotes_each_argument_and_sets_the_environment(engine: Engine,
                                                                     tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    done = await run(engine, workflow(generic(
        "args", "printf '[%s]\\n'",
        payload={"args": ["two words", f"$(touch {marker})", "it's", 7, True],
                 "environment": {"GREETING": "hello", "COUNT": 3}}),
        generic("env", "echo \"$GREETING $COUNT $FLOWCTL_TASK_NAME\"",
                payload={"environment": {"GREETING": "hello", "COUNT": 3}})))
    assert done.status == "completed"
    args, env = done.tasks
    assert args.result is not None
    assert args.result["output"].splitlines() == [
        "[two words]", f"[$(touch {marker})]", "[it's]", "[7]", "[true]"]
    assert not marker.exists()
    assert env.result == {"exit_code": 0, "output": "hello 3 env"}
