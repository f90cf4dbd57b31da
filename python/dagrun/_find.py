"""Find the `dagrun` executable the wheel installed, wherever pip put it.

pip puts a wheel's scripts in the scheme's `scripts` folder: the venv's `bin/`, the user
scheme's (`pip install --user`), or `TARGET/bin` for `pip install --target TARGET`, where
only TARGET is on `sys.path`. Look in the places that match how this package was installed,
in that order, before falling back to PATH (the way uv's `find_uv_bin` does).
"""

import os
import shutil
import sys
import sysconfig
from pathlib import Path

EXE = "dagrun" + (sysconfig.get_config_var("EXE") or "")


def _candidates():
    env = os.environ.get("DAGRUN_BIN")
    if env:
        yield Path(env)
    # A `--target DIR` install: this file is DIR/dagrun/_find.py, the binary DIR/bin/dagrun.
    yield Path(__file__).resolve().parent.parent / "bin" / EXE
    # The environment this Python runs in (a venv, a conda env, the system).
    yield Path(sysconfig.get_path("scripts")) / EXE
    # `pip install --user`.
    scheme = {"nt": "nt_user", "posix": "posix_user"}.get(os.name)
    if sys.platform == "darwin" and sys._framework:  # pragma: no cover - macOS framework builds
        scheme = "osx_framework_user"
    if scheme:
        try:
            yield Path(sysconfig.get_path("scripts", scheme=scheme)) / EXE
        except KeyError:  # pragma: no cover
            pass
    # The folder of the running interpreter (some installers put scripts beside it).
    yield Path(sys.executable).parent / EXE


def find_dagrun_bin() -> str:
    """The path of the `dagrun` executable: `$DAGRUN_BIN`, the wheel's install locations,
    then `PATH`. Raises FileNotFoundError naming every place it looked."""
    tried = []
    for p in _candidates():
        tried.append(str(p))
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    on_path = shutil.which(EXE)
    if on_path:
        return on_path
    raise FileNotFoundError(f"cannot find the dagrun executable (looked in {', '.join(tried)} and PATH): reinstall the dagrun wheel, or set DAGRUN_BIN")
