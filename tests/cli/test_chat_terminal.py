"""`yoi chat` in a real terminal (a pty): line editing, history, keys typed during an answer kept
out of it and offered at the next prompt, Ctrl-C at the prompt exits 130."""

from __future__ import annotations

import os
import pty
import subprocess

import pytest

from tests.cli.support import YOI, Stream, clean_env, finish

pytestmark = pytest.mark.slow

WORDS = [f"w{i}" for i in range(15)]
UP, LEFT, CTRL_C = "\x1b[A", "\x1b[D", "\x03"


def test_chat_in_a_terminal_edits_remembers_and_keeps_typing_out_of_the_answer() -> None:
    master, slave = pty.openpty()
    env = clean_env(YOI_ECHO_DELAY_MS="150", TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
    proc = subprocess.Popen([*YOI, "chat"], env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    screen = Stream(master)

    def type_keys(keys: str) -> None:
        os.write(master, keys.encode())

    try:
        at = screen.wait_for("you>")
        type_keys(f"helo{LEFT}l\r")  # line editing: the cursor moved back one character
        at = screen.wait_for("You said: hello", start=at)
        at = screen.wait_for("you>", start=at)

        type_keys(" ".join(WORDS) + "\r")
        at = screen.wait_for("You said: w0 w1 ", start=at)  # the answer is streaming
        type_keys("typed-ahead")  # typed while it streams: not echoed into the answer
        at = screen.wait_for(WORDS[-1], start=at)
        assert "You said: " + " ".join(WORDS) in screen.text
        at = screen.wait_for("you>", start=at)
        at = screen.wait_for("typed-ahead", start=at)  # ...but waiting in the next prompt
        type_keys("\r")
        at = screen.wait_for("You said: typed-ahead", start=at)
        at = screen.wait_for("you>", start=at)

        type_keys(f"{UP}\r")  # history: the last line again
        at = screen.wait_for("You said: typed-ahead", start=at)
        screen.wait_for("you>", start=at)
        type_keys(CTRL_C)  # at the prompt: leave, as the README says
        assert proc.wait(timeout=20) == 130
    finally:
        finish(proc)  # type: ignore[arg-type]
        os.close(master)
