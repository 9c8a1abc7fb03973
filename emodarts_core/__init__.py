"""emodarts_core: joint CNN -> SeqNN differentiable architecture search for speech emotion recognition."""

__version__ = "0.1.0"
