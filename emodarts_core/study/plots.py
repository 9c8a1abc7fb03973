"""The figures moved to `emodarts_core.plots`, where every notebook and layer can use them;
this name stays so that notebook copies made before the move still run."""

from emodarts_core.plots import *  # noqa: F401,F403
from emodarts_core.plots import __all__  # noqa: F401
