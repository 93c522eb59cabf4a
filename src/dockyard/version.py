"""dockyard's version, in a module of its own: the engine names it without importing the
package's `__init__` (which exports the Python API, itself built on the engine)."""

__version__ = "0.1.0"
