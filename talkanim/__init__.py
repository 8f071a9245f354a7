"""talkanim: make a still portrait talk and move like the person in a driving video."""

__version__ = "0.1.0"
