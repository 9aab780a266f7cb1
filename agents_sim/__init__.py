"""Simulated agents and workload: native robots, people and AI workers
(``agents_sim.native``), a VDA 5050 test AGV (``agents_sim.vda_agv``), the demo planner that
creates workflows through the hub's REST API (``agents_sim.planner``), and an MQTT stand-in
hub for tests (``agents_sim.mqtt_hub``). The simulator's KPIs and plots from event logs are
in ``agents_sim.report`` (imported on its own: it loads matplotlib)."""

from typing import TYPE_CHECKING, Any

from agents_sim.native import *  # noqa: F403
from agents_sim.native import __all__ as _native_all

if TYPE_CHECKING:
    from agents_sim.vda_agv import AgvModel, AgvRunner, run_agv

__all__ = [*_native_all, "AgvModel", "AgvRunner", "run_agv"]

_VDA_AGV = ("AgvModel", "AgvRunner", "run_agv")


def __getattr__(name: str) -> Any:
    """The VDA test AGV's names, imported on first use: imported here at once, the module
    would be in ``sys.modules`` before ``python -m agents_sim.vda_agv`` runs it, and runpy
    warns (RuntimeWarning) at every start."""
    if name in _VDA_AGV:
        from agents_sim import vda_agv

        return getattr(vda_agv, name)
    raise AttributeError(f"module 'agents_sim' has no attribute {name!r}")
