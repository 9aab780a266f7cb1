"""The fleet simulator (issue 11): scenarios, agents in SimPy time, the virtual mode.

``load_scenario`` validates a scenario (docs/simulator.md, "Scenarios"); ``run_virtual``
runs it in-process against the real edge cores under SimPy time and returns a ``SimResult``
— every facility's event log, its hash (the same scenario and seed give the same hash),
every workflow's outcome. ``SimAgent`` hosts one native ``AgentBehaviour`` (the model the
MQTT fleet runs too) as a SimPy process; ``SimEdge`` drives one facility's ``Core``.

>>> from agents_sim.sim import load_scenario, run_virtual
>>> s = load_scenario('''
... name: tiny
... duration_s: 60
... facilities:
...   - id: f1
...     templates: [ai_inspection]
...     fleet:
...       - {kind: robot, capabilities: [camera, pallet_jack]}
...       - {kind: human, capabilities: [rework]}
...       - {kind: ai, capabilities: [defect_detection]}
...     arrivals: [{template: ai_inspection, at: [1]}]
... ''')
>>> result = run_virtual(s)
>>> result.workflows
{'f1': {'f1-0-1': 'completed'}}
>>> result.log_hash == run_virtual(s).log_hash
True
"""

from agents_sim._sim_agent import AgentModel, SimAgent, SimLink
from agents_sim._sim_edge import SimEdge
from agents_sim._sim_hub import HubFactory, HubModel, hub_templates
from agents_sim._sim_live import LIVE_FAULTS, LiveResult, run_live
from agents_sim._sim_scenario import (
    FAULT_TYPES,
    SIMULATED_FAULTS,
    Arrival,
    CoreSettings,
    CrossFacilityArrival,
    CrossFacilityEnd,
    FacilitySpec,
    Fault,
    FleetSpec,
    HubSettings,
    Scenario,
    ScenarioError,
)
from agents_sim._sim_scenario_load import load_scenario
from agents_sim._sim_vda import SimVdaRobot, VdaRobotModel
from agents_sim._sim_virtual import (
    EPOCH,
    Progress,
    RecordingCore,
    SimResult,
    facility_core,
    log_hash,
    run_virtual,
)

__all__ = [
    "EPOCH",
    "FAULT_TYPES",
    "LIVE_FAULTS",
    "SIMULATED_FAULTS",
    "AgentModel",
    "Arrival",
    "CoreSettings",
    "CrossFacilityArrival",
    "CrossFacilityEnd",
    "FacilitySpec",
    "Fault",
    "FleetSpec",
    "HubFactory",
    "HubModel",
    "HubSettings",
    "LiveResult",
    "Progress",
    "RecordingCore",
    "Scenario",
    "ScenarioError",
    "SimAgent",
    "SimEdge",
    "SimLink",
    "SimResult",
    "SimVdaRobot",
    "VdaRobotModel",
    "facility_core",
    "hub_templates",
    "load_scenario",
    "log_hash",
    "run_live",
    "run_virtual",
]
