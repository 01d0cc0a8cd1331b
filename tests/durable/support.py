"""What the durability tests share: the profiles both processes know, and a long answer."""

from __future__ import annotations

from runtime_worker.profiles import Profile, ProfileRegistry

LONG_TEXT = " ".join(f"word{i}" for i in range(200))


def profiles() -> ProfileRegistry:
    registry = ProfileRegistry()
    registry.add(Profile(name="retrying", on_host_lost="retry"))
    registry.add(Profile(name="fragile", on_host_lost="fail"))
    return registry
