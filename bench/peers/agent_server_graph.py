"""The graph the LangGraph Agent Server peer serves: it answers like Yoi's echo provider, "You
said: <text>" piece by piece (no piece larger than a word), each piece a `custom` stream event.

Imported only by the Agent Server, inside its own venv (bench/agent_server_env.py).
"""

from __future__ import annotations

import asyncio
import re
from typing import TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph


class EchoState(TypedDict, total=False):
    text: str
    answer: str


async def echo(state: EchoState) -> EchoState:
    write = get_stream_writer()
    pieces = re.findall(r"\s*\S+", f"You said: {state.get('text', '')}")
    for index, piece in enumerate(pieces):
        if index:
            await asyncio.sleep(0)  # what echo does at YOI_ECHO_DELAY_MS=0: yield between pieces
        write({"text": piece})
    return {"answer": "".join(pieces)}


graph = StateGraph(EchoState).add_node("echo", echo).add_edge(START, "echo")
graph = graph.add_edge("echo", END).compile()
