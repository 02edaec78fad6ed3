"""Run one call of every Kestra operation against a live flowdeck server and write the
answers, with the model each is documented as, to a JSON file (see `make check-compat`).

    python tests/compat/record_calls.py OUT.json
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import httpx  # noqa: E402

from helpers import open_engine  # noqa: E402
from live_server import start_server, stop_server  # noqa: E402
from server.kestra_calls import exercise  # noqa: E402


async def record(out: Path) -> int:
    with tempfile.TemporaryDirectory() as data:
        engine = await open_engine(Path(data) / "data")
        server, task, url = await start_server(engine)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                calls = await exercise(client, engine)
        finally:
            await stop_server(server, task)
            await engine.close()
    out.write_text(json.dumps([asdict(c) for c in calls], indent=1))
    return len(calls)


if __name__ == "__main__":
    count = asyncio.run(record(Path(sys.argv[1])))
    print(f"recorded {count} answers")
