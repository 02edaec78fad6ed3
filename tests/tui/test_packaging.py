"""The built wheel carries the deck's bundled themes: installed in a fresh venv, the deck
opens with flowdeck-dark and flowdeck-light (they once lived only in the source tree)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Run in the fresh venv: the deck (headless) over an embedded engine, and its themes.
CHECK = textwrap.dedent("""
    import asyncio, sys, tempfile
    from pathlib import Path

    import flowdeck.tui.theme as theme
    from flowdeck.client.embedded import EmbeddedBackend
    from flowdeck.engine.engine import EngineSettings
    from flowdeck.tui.app import FlowdeckApp

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            backend = EmbeddedBackend(EngineSettings(data_dir=Path(tmp), scheduler=False,
                                                     envs={}))
            app = FlowdeckApp(backend, close_backend=True, show_toasts=False,
                              theme_dirs=[], save_dir=Path(tmp))
            async with app.run_test(size=(80, 24)):
                for _ in range(1000):  # connected: the engine is open, then closed in order
                    if app.connection == "connected":
                        break
                    await asyncio.sleep(0.01)
                print(theme.__file__)
                print(app.theme)
                print(",".join(sorted(t for t in app.available_themes
                                      if t.startswith("flowdeck-"))))
                print(app.theme_problems)
                print(app.connection)

    asyncio.run(main())
""")


def test_the_wheel_opens_the_deck_with_both_themes(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                    "-w", str(wheels)], check=True, timeout=120)
    [wheel] = wheels.glob("flowdeck-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=120)
    # flowdeck from the wheel; its dependencies from this venv (after it on sys.path, and
    # without running this venv's .pth files, so the source tree's editable flowdeck is not
    # seen)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={"PATH": "/usr/bin:/bin",
                                                          "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    module, current, bundled, problems, connection = done.stdout.strip().splitlines()[-5:]
    assert module.startswith(str(site)), module  # the installed copy, not the source tree
    assert current == "flowdeck-dark"
    assert bundled == "flowdeck-dark,flowdeck-light"
    assert problems == "[]" and connection == "connected"
