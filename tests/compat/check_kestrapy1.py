"""Read recorded answers of the Kestra dialect with kestrapy 1.0.4's models (the client
Kestra's 1.x end-to-end tests use), strictly; run in a virtual environment holding kestrapy
1.0.4 only (see `make check-compat`).

    python tests/compat/check_kestrapy1.py CALLS.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import kestrapy
import kestrapy.models as models
from kestra_errata import parse

#: kestrapy 2.x model names that 1.0.4 names otherwise (or has no model for).
RENAMED = {
    "CursorOrOffsetPagedResultsLogEntry": "PagedResultsLogEntry",
    "PagedResultsApiTriggerAndState": "PagedResultsTriggerControllerTriggers",
    "KVControllerKvDetail": "KVControllerTypedValue",
    "PagedResultsKVEntry": "Paged[KVEntry]",
    "Paged[Execution]": "PagedResultsExecution",
}


def main(path: str) -> int:
    version = getattr(kestrapy, "__version__", "?")
    calls = json.loads(Path(path).read_text())
    passed, failed, skipped = 0, 0, 0
    for call in calls:
        model = call["model"]
        if model is None:
            continue
        model = RENAMED.get(model, model)
        if model.startswith("[") and model[1:-1] in RENAMED:
            model = f"[{RENAMED[model[1:-1]]}]"
        name = model.strip("[]").removeprefix("Paged[").rstrip("]")
        if not hasattr(models, name):  # an operation newer than the 1.x client
            skipped += 1
            print(f"skipped {call['name']}: kestrapy {version} has no model {name}")
            continue
        try:
            parse(models, model, call["body"], object_maps=True)
        except Exception as exc:  # whatever the model raises is a failure to report
            failed += 1
            print(f"FAILED {call['name']} ({call['method']} {call['path']}) as {model}: {exc}")
        else:
            passed += 1
    print(f"kestrapy {version}: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
