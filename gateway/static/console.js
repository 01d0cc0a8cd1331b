// The console of the Companion or of any Worker (target.js): loads the transcript, follows the
// event stream from a cursor, sends messages with an idempotency key, cancels, and says what went
// wrong in words.
// This module wires the page's controls to the parts: console-page.js (state and display),
// console-session.js (loading, stream, token lock) and console-send.js (send, cancel).

import {
  api, blockedReason, clearAlert, generating, isUnauthorized, runs, showError, state, status,
  target, ui, update,
} from "./console-page.js";
import { cancel, send } from "./console-send.js";
import { boot, follower, loadEarlier, lock } from "./console-session.js";
import { mountWorkerControls } from "./target.js";

// --------------------------------------------------------------------------------------- wiring

ui.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = ui.tokenInput.value.trim();
  if (!token) return;
  api.token = token;
  ui.tokenInput.value = "";
  ui.tokenForm.hidden = true;
  state.locked = false;
  boot();
  ui.input.focus();
});

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  if (blockedReason() !== "") return;
  const text = ui.input.value;
  if (text.trim() === "") return;
  ui.input.value = "";
  send(text);
});

ui.input.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  ui.composer.requestSubmit();
});

ui.input.addEventListener("input", update);
mountWorkerControls({
  target,
  api,
  button: ui.stop,
  onStopped() {
    state.stopped = true;
    update();
  },
  onError(error) {
    if (isUnauthorized(error)) lock();
    else showError(error);
  },
});
ui.cancel.addEventListener("click", cancel);
ui.earlier.addEventListener("click", loadEarlier);
ui.alertClose.addEventListener("click", () => {
  clearAlert();
  ui.input.focus();
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  if (generating() && !state.locked) {
    event.preventDefault();
    cancel();
  } else if (ui.alertText.textContent !== "") {
    clearAlert();
  }
});

// Hooks for tests and for poking at a live console from the devtools; they grant nothing the
// page itself cannot do.
window.__yoi = Object.freeze({
  dropStream: () => follower.drop(),
  send: (text) => send(text),
  snapshot: () => ({
    status: status()[0],
    cursor: follower.cursor,
    reconnects: follower.reconnects,
    reconciles: state.reconciles,
    runs: runs.snapshot(),
  }),
});

update();
boot();
