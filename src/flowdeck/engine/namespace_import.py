"""Putting files into a namespace, as Kestra does: `/_flows/*.yml` are flows, a zip unpacks.

A YAML file put under `/_flows/` is imported as a flow of that namespace (it must declare that
namespace); anything else there is refused. A zip archive is unpacked at the namespace root,
every entry read and checked (path, size, CRC) before one is written, within bounds on how much
one archive may unpack to.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from flowdeck.core.errors import ValidationError

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

MAX_ZIP_ENTRIES = 10_000
MAX_ZIP_BYTES = 100 * 1024 * 1024


def under_flows(path: str) -> bool:
    parts = PurePosixPath("/" + path.lstrip("/")).parts[1:]
    return parts[:1] == ("_flows",)


async def _import_flow(engine: Engine, namespace: str, path: str, content: bytes) -> None:
    if not path.endswith((".yml", ".yaml")):
        raise ValidationError([("path", "'/_flows' is reserved for flow sources (*.yml)")])
    try:
        source = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError([("fileContent", "a flow source must be UTF-8 text")]) from None
    flow = await engine.validate_flow_async(source)
    if flow.namespace != namespace:
        raise ValidationError([("namespace", f"the flow is in namespace '{flow.namespace}', "
                                             f"not '{namespace}'")])
    await engine.apply_flow(source)


async def put_file(engine: Engine, namespace: str, path: str, content: bytes) -> None:
    """Store a namespace file, or import it as a flow when it lives under `/_flows/`."""
    if under_flows(path):
        await _import_flow(engine, namespace, path, content)
    else:
        engine.files.put(namespace, path, content)


def _read_archive(engine: Engine, namespace: str, content: bytes) -> list[tuple[str, bytes]]:
    contents: list[tuple[str, bytes]] = []
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            entries = [i for i in archive.infolist() if not i.is_dir()]
            if len(entries) > MAX_ZIP_ENTRIES:
                raise ValidationError([("fileContent", f"the archive holds more than "
                                                       f"{MAX_ZIP_ENTRIES} files")])
            if sum(i.file_size for i in entries) > MAX_ZIP_BYTES:
                raise ValidationError([("fileContent", "the archive unpacks to more than "
                                                       f"{MAX_ZIP_BYTES // (1024 * 1024)} MiB")])
            for info in entries:
                engine.files.resolve(namespace, info.filename)  # refuses '..' with a 422
                if under_flows(info.filename) and not info.filename.endswith((".yml",
                                                                               ".yaml")):
                    raise ValidationError([("fileContent", f"'{info.filename}': '/_flows' is "
                                                           "reserved for flow sources (*.yml)")])
                # zipfile stops at the declared size and checks the CRC: no bomb gets past.
                contents.append(("/" + info.filename.lstrip("/"), archive.read(info)))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error,
            NotImplementedError, RuntimeError) as exc:
        raise ValidationError([("fileContent", f"not a readable zip archive: {exc}")]) from None
    return contents


async def unpack_archive(engine: Engine, namespace: str, content: bytes) -> None:
    """Unpack a zip at the namespace root; nothing is written unless every entry is sound."""
    for path, data in _read_archive(engine, namespace, content):
        await put_file(engine, namespace, path, data)


class NamespaceImport:
    """`put_file` and `unpack_archive` for one engine (what the namespace-file routes call)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def put_file(self, namespace: str, path: str, content: bytes) -> None:
        await put_file(self._engine, namespace, path, content)

    async def unpack_archive(self, namespace: str, content: bytes) -> None:
        await unpack_archive(self._engine, namespace, content)
