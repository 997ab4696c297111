"""Where the dev environment keeps binaries and state, and the wrapper modules it builds from."""

from __future__ import annotations

import os
import pathlib

from tiers.runtime import sparkjars


def cache_dir() -> pathlib.Path:
    """Built binaries, one folder per tool and version; kept across runs and clones. The
    runtime's own lookup of the Kafka connector's jars knows it too (it may not import this)."""
    return sparkjars.cache_root()


def default_state_dir() -> pathlib.Path:
    """The running environment of `tiers dev up`: certificates, data, logs and state.json."""
    root = os.environ.get("TIERS_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "tiers", "dev"
    )
    return pathlib.Path(root)


def repo_root() -> pathlib.Path:
    """The source checkout: the dev environment builds from its `tools/` wrapper modules."""
    override = os.environ.get("TIERS_REPO")
    if override:
        return pathlib.Path(override)
    here = pathlib.Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tools" / "k8s" / "go.mod").exists():
            return parent
    raise FileNotFoundError(
        "tools/k8s/go.mod not found above tiers.devenv: use a source checkout or set TIERS_REPO"
    )
