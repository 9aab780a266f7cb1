"""The Fleetflow protocol: topic names, message types, codecs and validation. No I/O."""

from topics._errors import ProtocolError
from topics._models import *  # noqa: F403
from topics._models import __all__ as _models_all
from topics._names import *  # noqa: F403
from topics._names import __all__ as _names_all

__all__ = ["ProtocolError", *_names_all, *_models_all]
