"""Runtimes hosting conversational Workers: embedded in-process, or a fleet over Redis."""
