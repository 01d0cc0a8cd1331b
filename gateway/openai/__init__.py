"""The OpenAI-compatible facade: `/v1/models` and `/v1/chat/completions` onto Workers.

Light on purpose: `gateway.errors` and the auth middleware import `gateway.openai.errors`, so
this package's `__init__` imports nothing.
"""
