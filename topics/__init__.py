"""The Fleetflow protocol: topic names, message types, codecs and validation. No I/O."""

from topics._codec import *  # noqa: F403
from topics._codec import __all__ as _codec_all
from topics._errors import ProtocolError
from topics._limits import *  # noqa: F403
from topics._limits import __all__ as _limits_all
from topics._links import *  # noqa: F403
from topics._links import __all__ as _links_all
from topics._models import *  # noqa: F403
from topics._models import __all__ as _models_all
from topics._names import *  # noqa: F403
from topics._names import __all__ as _names_all
from topics._vda5050 import *  # noqa: F403
from topics._vda5050 import __all__ as _vda_all

__all__ = [
    "ProtocolError",
    *_names_all,
    *_models_all,
    *_links_all,
    *_limits_all,
    *_codec_all,
    *_vda_all,
]
