"""Inference backends behind one protocol (`base`); `factory.create_backend` chooses by name or `auto`."""

from edge_agent.runtime.backends.base import Backend
from edge_agent.runtime.backends.factory import create_backend, matching_engine

__all__ = ["Backend", "create_backend", "matching_engine"]
