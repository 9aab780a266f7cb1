"""The amqtt release ``FleetflowBroker`` patches, checked before the broker starts.

Kept apart from the patch so that ``import broker`` does not import amqtt.
"""

from __future__ import annotations

from importlib.metadata import version

__all__ = ["AMQTT_VERSION", "check_amqtt_version"]

AMQTT_VERSION = "0.12.1"
"""The amqtt release the overridden methods were copied from."""


def check_amqtt_version(found: str | None = None) -> None:
    """Refuse to run on an amqtt other than the one ``FleetflowBroker`` was written for
    (``found``: the installed version, looked up when not given)."""
    found = version("amqtt") if found is None else found
    if found != AMQTT_VERSION:
        raise RuntimeError(
            f"the embedded broker patches amqtt {AMQTT_VERSION} (broker/_amqtt_broker.py); "
            f"amqtt {found} is installed: check the patches against it, then update "
            "AMQTT_VERSION and the pin in pyproject.toml"
        )
