"""``FLEETFLOW_DATA``: the one data root of every command (default ``./.fleetflow``).

Under it, as ``fleetflow up`` lays it out: ``passwd`` and ``credentials.yaml`` (the broker's
users), ``edge-{facility}/`` (an edge's store), ``hub/`` (the hub's store and tokens),
``logs/``, ``admin-token``. A command's own ``--data`` (or ``--passwd``) still names its
directory (or file) explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "DEFAULT_DATA", "data_root"]

DATA_ENV = "FLEETFLOW_DATA"
"""The environment variable naming the data root."""
DEFAULT_DATA = ".fleetflow"
"""The data root when ``FLEETFLOW_DATA`` is unset or empty (relative to the working dir)."""


def data_root() -> Path:
    """The data root: ``$FLEETFLOW_DATA``, else ``./.fleetflow``."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)
