"""Simulated agents and workload: native robots, people and AI workers
(``agents_sim.native``), a VDA 5050 test AGV (``agents_sim.vda_agv``), the demo planner that
creates workflows through the hub's REST API (``agents_sim.planner``), and an MQTT stand-in
hub for tests (``agents_sim.mqtt_hub``). The simulator's KPIs and plots from event logs are
in ``agents_sim.report`` (imported on its own: it loads matplotlib)."""

from agents_sim.native import *  # noqa: F403
from agents_sim.native import __all__ as _native_all
from agents_sim.vda_agv import AgvModel, AgvRunner, run_agv

__all__ = [*_native_all, "AgvModel", "AgvRunner", "run_agv"]
