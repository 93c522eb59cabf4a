"""Fixtures for Engine API tests: the local registry of tests/registry."""

from tests.registry.conftest import registry

__all__ = ["registry"]
