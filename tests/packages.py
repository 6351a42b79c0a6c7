"""The project's package sets as its requirements files pin them.

Usage::

    assert not installed & DEV_ONLY  # no test or lint tool where only the runtime belongs
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.servers import REPO_ROOT

# `name==version`, the only form the requirements files use (-r lines and comments aside).
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them: `Zope.Interface` is `zope-interface`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(path: Path) -> set[str]:
    """The normalized names a requirements file pins itself (not those it includes with -r)."""
    return {normalized(name) for name in PIN.findall(path.read_text())}


RUNTIME = pinned(REPO_ROOT / "requirements.txt")
# What only the tests, lint and benchmarks need; never in the image or the runtime virtualenv.
DEV_ONLY = pinned(REPO_ROOT / "requirements-dev.txt") - RUNTIME
