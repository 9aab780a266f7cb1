"""VDA 5050 2.x master control (sans-IO) and its bridge to the workflow core.

``VdaMaster`` turns steps into orders and instant actions and AGV states into outcomes;
``VdaBridge`` translates between those outcomes and the core's native inputs. The shell
carries the JSON messages (``uagv/v2/...``).
"""

from edge_runtime.vda5050._bridge import VdaBridge, VdaTranslation
from edge_runtime.vda5050._master import *  # noqa: F403
from edge_runtime.vda5050._master import __all__ as _master_all

__all__ = ["VdaBridge", "VdaTranslation", *_master_all]
