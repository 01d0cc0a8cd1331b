// The conversation as DOM: one <article> per turn, keyed by input_id (user) and run_id (assistant)
// so that a turn loaded from the transcript and the same turn arriving on the stream stay one turn.

import { RESULT_LABELS } from "./errors.js";
import { renderMarkdown } from "./markdown.js";

const WHO = { user: "You", assistant: "Companion", notice: "Notice" };
const STICK_PX = 48;

function timeLabel(tsSeconds) {
  const time = document.createElement("time");
  if (typeof tsSeconds === "number" && Number.isFinite(tsSeconds)) {
    const date = new Date(tsSeconds * 1000);
    time.dateTime = date.toISOString();
    time.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  return time;
}

/** One turn; `text` is the raw text, the DOM is rebuilt from it once per animation frame. */
class Turn {
  constructor(role, ts) {
    this.role = role;
    this.text = "";
    this.final = false;
    this.el = document.createElement("article");
    this.el.className = `turn turn-${role}`;
    this.el.dataset.testid = "turn";
    this.el.dataset.role = role;
    this.el.dataset.result = "";
    const meta = document.createElement("header");
    meta.className = "turn-meta";
    const who = document.createElement("span");
    who.className = "turn-who";
    who.textContent = WHO[role] ?? role;
    this.badge = document.createElement("span");
    this.badge.className = "badge";
    this.badge.dataset.testid = "turn-badge";
    this.badge.hidden = true;
    meta.append(who, this.badge, timeLabel(ts));
    this.body = document.createElement("div");
    this.body.className = "turn-text";
    this.body.dataset.testid = "turn-text";
    this.note = document.createElement("p");
    this.note.className = "turn-note";
    this.note.dataset.testid = "turn-note";
    this.el.append(meta, this.body, this.note);
  }

  render() {
    if (this.role === "assistant") this.body.replaceChildren(renderMarkdown(this.text));
    else this.body.textContent = this.text;
  }

  mark(result, detail = "") {
    this.el.dataset.result = result ?? "";
    const label = RESULT_LABELS[result] ?? "";
    this.badge.textContent = label;
    this.badge.hidden = label === "";
    this.badge.dataset.kind = result ?? "";
    if (detail) this.note.textContent = detail;
  }
}

export class TranscriptView {
  constructor(root, scroller) {
    this.root = root;
    this.scroller = scroller;
    this.users = new Map();
    this.answers = new Map();
    this.dirty = new Set();
    this.frame = 0;
    this.stick = true;
    scroller.addEventListener("scroll", () => {
      this.stick = this.nearBottom();
    }, { passive: true });
  }

  clear() {
    this.root.replaceChildren();
    this.users.clear();
    this.answers.clear();
    this.dirty.clear();
    this.stick = true;
  }

  get empty() {
    return this.root.childElementCount === 0;
  }

  nearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < STICK_PX;
  }

  /** Adds transcript entries (oldest first) at the end, or before everything with `atStart`. */
  addEntries(entries, { atStart = false } = {}) {
    const fragment = document.createDocumentFragment();
    for (const entry of entries) {
      const turn = this.fromEntry(entry);
      if (turn !== null) fragment.append(turn.el);
    }
    if (atStart) this.root.prepend(fragment);
    else this.root.append(fragment);
    this.flush();
  }

  fromEntry(entry) {
    const role = WHO[entry.role] ? entry.role : "notice";
    if (role === "user" && entry.input_id && this.users.has(entry.input_id)) return null;
    if (role === "assistant" && entry.run_id && this.answers.has(entry.run_id)) return null;
    const turn = new Turn(role, entry.ts);
    turn.text = entry.text ?? "";
    turn.final = role === "assistant";
    turn.mark(entry.result ?? "");
    if (role === "user" && entry.input_id) this.users.set(entry.input_id, turn);
    if (role === "assistant" && entry.run_id) this.answers.set(entry.run_id, turn);
    turn.render();
    return turn;
  }

  /** The person's turn for `inputId`, added at the end when new. */
  user(inputId, text, { ts, pending = false } = {}) {
    let turn = inputId ? this.users.get(inputId) : undefined;
    if (turn === undefined) {
      turn = new Turn("user", ts);
      turn.text = text;
      if (inputId) this.users.set(inputId, turn);
      this.root.append(turn.el);
      this.schedule(turn);
    }
    if (pending) turn.el.dataset.pending = "true";
    else delete turn.el.dataset.pending;
    return turn;
  }

  /** Withdraws a turn the gateway refused; a turn it already confirmed stays. */
  withdrawUser(inputId) {
    const turn = this.users.get(inputId);
    if (turn?.el.dataset.pending !== "true") return;
    turn.el.remove();
    this.users.delete(inputId);
  }

  userTurn(inputId) {
    return this.users.get(inputId);
  }

  answer(runId) {
    return this.answers.get(runId);
  }

  /** The answer turn of `runId`, created (streaming) at the end when new. */
  startAnswer(runId, ts) {
    let turn = this.answers.get(runId);
    if (turn === undefined) {
      turn = new Turn("assistant", ts);
      turn.mark("streaming");
      turn.el.setAttribute("aria-busy", "true");
      this.answers.set(runId, turn);
      this.root.append(turn.el);
      this.schedule(turn);
    }
    return turn;
  }

  setText(turn, text) {
    turn.text = text;
    this.schedule(turn);
  }

  appendText(turn, text) {
    turn.text += text;
    this.schedule(turn);
  }

  finish(turn, result, detail = "") {
    turn.final = true;
    turn.mark(result, detail);
    turn.el.removeAttribute("aria-busy");
    this.schedule(turn);
  }

  schedule(turn) {
    this.dirty.add(turn);
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Rebuilds changed turns in one pass, keeping the view pinned to the end if it was there. */
  flush() {
    if (this.frame !== 0) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const stick = this.stick;
    for (const turn of this.dirty) turn.render();
    this.dirty.clear();
    if (stick) this.scrollToEnd();
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stick = true;
  }
}
