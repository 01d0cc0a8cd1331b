"""Profiles: named Worker configurations, shipped as TOML files in the package.

Operators add their own by pointing `YOI_PROFILES_DIR` at a folder of `*.toml` files (a file
there overrides a built-in profile of the same name). System prompts are package resources.
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path
from string import Template
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import InvalidInput
from shared.models import Strategy

_PACKAGE = "runtime_worker.resources"


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    # Empty means the runtime's default (YOI_PROVIDER / YOI_OPENAI_MODEL / YOI_TURN_TIMEOUT_S).
    provider: str = ""
    model: str = ""
    reply_language: str = "the language the person writes in"
    prompt: str = Field(default="assistant.md", pattern=r"^[A-Za-z0-9_.-]+\.md$")
    max_output_tokens: int = Field(default=1024, ge=1)
    # None leaves sampling to the provider; 0 asks for greedy (reproducible) answers.
    temperature: float | None = Field(default=None, ge=0, le=2)
    turn_timeout_s: float | None = Field(default=None, gt=0)
    transcript_maxlen: int = Field(default=500, ge=2)
    history_entries: int = Field(default=40, ge=0)
    default_strategy: Strategy = Strategy.REJECT
    on_host_lost: Literal["retry", "fail"] = "retry"


class ProfileRegistry:
    """Built-in profiles plus an operator's folder; looked up by name."""

    def __init__(self, extra_dir: Path | None = None) -> None:
        self._profiles: dict[str, Profile] = {}
        builtin = resources.files(_PACKAGE).joinpath("profiles")
        for item in builtin.iterdir():
            if item.name.endswith(".toml"):
                self._add(item.read_text(encoding="utf-8"), item.name)
        if extra_dir is not None and extra_dir.is_dir():
            for path in sorted(extra_dir.glob("*.toml")):
                self._add(path.read_text(encoding="utf-8"), path.name)

    def _add(self, text: str, source: str) -> None:
        try:
            profile = Profile.model_validate(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            # A broken operator file must not take the runtime down silently or half-loaded.
            raise ValueError(f"profile file {source} is invalid: {exc}") from None
        self._profiles[profile.name] = profile

    def get(self, name: str) -> Profile:
        try:
            return self._profiles[name]
        except KeyError:
            raise InvalidInput(f"unknown profile {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def add(self, profile: Profile) -> None:
        """Register a profile made in code (embedding programs and tests)."""
        self._profiles[profile.name] = profile

    def default_strategies(self) -> dict[str, Strategy]:
        """Profile name → its default multitask strategy."""
        return {name: profile.default_strategy for name, profile in self._profiles.items()}


def render_prompt(profile: Profile, **identity: str) -> str:
    """The system prompt resource with the Worker's identity substituted in."""
    template = _prompt_template(profile.prompt)
    return template.safe_substitute(reply_language=profile.reply_language, **identity).strip()


@functools.lru_cache(maxsize=64)
def _prompt_template(name: str) -> Template:
    """A prompt resource, read once: package resources do not change while the process runs."""
    source = resources.files(_PACKAGE).joinpath("prompts", name)
    return Template(source.read_text(encoding="utf-8"))
