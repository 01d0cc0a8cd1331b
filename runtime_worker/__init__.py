"""Runtimes hosting conversational Workers: embedded in-process, or a fleet over Redis."""

from runtime_worker.runtime import Runtime

__all__ = ["Runtime"]
