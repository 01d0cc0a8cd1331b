"""No test flushes a Redis it did not start: every flush is in a test or fixture handed a
server of the suite's own (`private_redis_url` and the fixtures built on it)."""

from __future__ import annotations

import ast

from tests.packaging.support import ROOT

FLUSHES = {"flushall", "flushdb", "script_flush"}
PRIVATE = {"private_redis_url", "private_redis", "flushable"}


def flushing_functions() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = [
                call
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in FLUSHES
            ]
            if calls:
                found.append((f"{path.relative_to(ROOT)}::{node.name}", node))
    return found


def test_every_flush_runs_on_a_private_server() -> None:
    flushing = flushing_functions()
    assert flushing, "the scan found no flush at all: it looks in the wrong place"
    for where, node in flushing:
        params = {arg.arg for arg in node.args.args}
        assert params & PRIVATE, f"{where} flushes a Redis the suite may not have started"
