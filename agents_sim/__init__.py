"""Simulated agents (native MQTT and VDA 5050), facility maps and scenarios."""

from agents_sim.native import *  # noqa: F403
from agents_sim.native import __all__ as _native_all
from agents_sim.vda_agv import AgvModel, AgvRunner, run_agv

__all__ = [*_native_all, "AgvModel", "AgvRunner", "run_agv"]
