"""dockyard's benchmark (issue 17 §1): `bench/run.py` runs every row against the peers.

The package holds the shared pieces (engine adapters, sampling, memory accounting, the rows,
the physical floors, the report); the older single-area scripts beside it reuse them.
"""
