"""dockyard: a Docker-compatible image builder and container engine."""

__version__ = "0.1.0"
