"""Small rules that were loose: the data dir is absolute, KV keys and e-mail/URI inputs end
where they end (no trailing newline), and FILE inputs only name uploads or namespace files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowdeck.core.errors import InvalidInputsError, ValidationError
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.inputs import InputDef, resolve_inputs
from flowdeck.engine.kv import KEY
from helpers import apply


async def test_a_relative_data_dir_is_made_absolute_once(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    engine = await Engine.open(EngineSettings(data_dir=Path("rel-data"), scheduler=False,
                                              envs={}))
    try:
        assert engine.data_dir == tmp_path / "rel-data" and engine.data_dir.is_absolute()
        monkeypatch.chdir("/")  # a later change of directory changes nothing
        upload = engine.data_dir / "uploads" / "u1" / "notes.txt"
        upload.parent.mkdir(parents=True)
        upload.write_text("notes")
        await apply(engine, FILE_FLOW)
        execution = await engine.create_execution("t.rules", "takes-file",
                                                  inputs={"doc": upload.as_uri()})
        assert execution.inputs["doc"] == upload.as_uri()
        assert (await engine.wait_until_terminal(execution.id, 10)).state.current == "SUCCESS"
    finally:
        await engine.close()


FILE_FLOW = """
    id: takes-file
    namespace: t.rules
    inputs:
      - id: doc
        type: FILE
    tasks:
      - id: t
        type: io.kestra.plugin.core.log.Log
        message: "{{ inputs.doc }}"
    """


@pytest.mark.parametrize("value", [
    "file:///etc/passwd", "file:///", "/etc/passwd", "../../etc/passwd", "notes.txt",
    "https://example.test/x", "kestra:///x/y", "file://host/share/x",
])
async def test_file_inputs_only_name_uploads_or_namespace_files(engine: Engine,
                                                                value: str) -> None:
    await apply(engine, FILE_FLOW)
    with pytest.raises(InvalidInputsError, match=r"inputs\.doc: .*upload.*nsfile"):
        await engine.create_execution("t.rules", "takes-file", inputs={"doc": value})


async def test_file_inputs_accept_namespace_files_and_uploads(engine: Engine) -> None:
    await apply(engine, FILE_FLOW)
    for value in ("nsfile:///data/in.csv", "nsfile://in.csv"):
        created = await engine.create_execution("t.rules", "takes-file", inputs={"doc": value})
        assert created.inputs["doc"] == value
    with pytest.raises(InvalidInputsError, match=r"'\.\.'"):
        await engine.create_execution("t.rules", "takes-file",
                                      inputs={"doc": "nsfile:///../secret"})
    outside = engine.data_dir / "uploads" / ".." / "flowdeck.db"
    with pytest.raises(InvalidInputsError):
        await engine.create_execution("t.rules", "takes-file",
                                      inputs={"doc": outside.as_uri()})


def test_a_file_default_that_is_a_local_path_is_refused_with_the_flow() -> None:
    from flowdeck.core.errors import InvalidFlowError
    from flowdeck.engine.flows import parse_flow

    with pytest.raises(InvalidFlowError, match=r"inputs\[0\]\.defaults"):
        parse_flow("id: f\nnamespace: n\ninputs:\n  - id: doc\n    type: FILE\n"
                   "    defaults: file:///etc/passwd\n"
                   "tasks: [{id: t, type: io.kestra.plugin.core.log.Log, message: m}]\n")


def test_patterns_end_at_the_end_of_the_text() -> None:
    assert KEY.match("key\n") is None and KEY.search("key\n") is None
    assert KEY.fullmatch("dir/key.v1") is not None
    for kind, good in (("EMAIL", "ada@example.test"), ("URI", "https://example.test/a")):
        declared = [InputDef(id="x", type=kind)]
        assert resolve_inputs(declared, {"x": good}) == {"x": good}
        with pytest.raises(InvalidInputsError):
            resolve_inputs(declared, {"x": good + "\n"})


async def test_kv_keys_with_a_trailing_newline_are_refused_everywhere(engine: Engine) -> None:
    with pytest.raises(ValidationError, match=re.escape("^[a-zA-Z0-9][a-zA-Z0-9._/-]*$")):
        await engine.kv.put("t.rules", "key\n", 1)
    for call in (engine.kv.get, engine.kv.delete):
        with pytest.raises(ValidationError):
            await call("t.rules", "key\n")
