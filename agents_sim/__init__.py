"""Simulated agents and workload: native robots, people and AI workers
(``agents_sim.native``), a VDA 5050 test AGV (``agents_sim.vda_agv``), and a scripted planner
that creates demo workflows as the hub would (``agents_sim.planner``)."""

from agents_sim.native import *  # noqa: F403
from agents_sim.native import __all__ as _native_all
from agents_sim.vda_agv import AgvModel, AgvRunner, run_agv

__all__ = [*_native_all, "AgvModel", "AgvRunner", "run_agv"]
