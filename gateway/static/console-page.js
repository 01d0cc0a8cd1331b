// The console page's one state and how it is shown: its target (target.js) and API client, its
// elements, the transcript view and runs, the status line, the composer and the alert.
// Apart from console.js so the loading (console-session.js) and the sending (console-send.js)
// read and show one state; this module only looks elements up, it wires nothing.

import { Api, ApiError } from "./api.js";
import { explain } from "./errors.js";
import { Runs } from "./runs.js";
import { consoleTarget } from "./target.js";
import { TranscriptView } from "./transcript.js";

export const target = consoleTarget(window.location.search);

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
export const ui = {
  ref: $("companion-ref"),
  workspace: $("workspace"),
  workspaceName: $("workspace-name"),
  status: $("status"),
  conversation: $("conversation"),
  transcript: $("transcript"),
  empty: $("empty"),
  earlier: $("load-earlier"),
  alert: $("alert"),
  alertText: $("error-region"),
  alertClose: $("error-dismiss"),
  composer: $("composer"),
  input: $("composer-input"),
  send: $("send"),
  cancel: $("cancel"),
  reason: $("composer-reason"),
  tokenForm: $("token-form"),
  tokenInput: $("token-input"),
  tokenError: $("token-error"),
  stop: $("stop"),
};

export const api = new Api(window.sessionStorage);
export const view = new TranscriptView(ui.transcript, ui.conversation);
export const runs = new Runs(view, (notice) => {
  const { text, code, tone = "error", failure = false, stream = false } = notice;
  showAlert(text, { code, tone });
  if (failure) state.failure = code;
  if (stream) state.streamAlert = true;
});

export const state = {
  detail: null,
  phase: "connecting", // connecting | ready | reconnecting
  locked: false,
  sending: false,
  cancelling: false,
  failure: null, // code behind an "error" status, until the next successful send
  streamAlert: false, // the alert tells of a stream failure: a reopened stream clears it
  nextBefore: null,
  cancelPath: target.cancel, // a Worker's own route; the Companion's is found on first use
  boots: 0,
  bootTimer: 0,
  bootFailures: 0,
  dropped: false, // the stream was lost since it last opened: the gateway may have restarted
  reconciles: 0,
  stopped: false, // the Worker was stopped: nothing more to send
};

// ---------------------------------------------------------------------------- status and composer

export function generating() {
  return runs.busy;
}

export function status() {
  if (state.locked) return ["locked", "Token needed"];
  if (state.phase === "reconnecting") return ["reconnecting", "Reconnecting…"];
  if (state.phase === "connecting") return ["connecting", "Connecting…"];
  if (state.stopped && !generating()) return ["stopped", "Stopped"];
  if (state.sending) return ["sending", "Sending…"];
  if (generating()) return ["generating", "Generating…"];
  if (state.failure !== null) return ["error", "Error"];
  return ["idle", "Idle"];
}

export function blockedReason() {
  if (state.locked) return "Enter your API token";
  if (state.phase === "reconnecting") return "Reconnecting…";
  if (state.phase === "connecting") return "Connecting…";
  if (state.stopped) return "This Worker is stopped";
  if (state.sending) return "Sending…";
  if (generating()) return "Waiting for the answer…";
  return "";
}

/** Sets text only when it changes: live regions would announce a rewrite of the same words. */
function say(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

export function update() {
  const [key, label] = status();
  ui.status.dataset.status = key;
  say(ui.status, label);
  const reason = blockedReason();
  say(ui.reason, reason);
  ui.composer.dataset.blocked = reason === "" ? "false" : "true";
  ui.input.disabled = state.locked;
  ui.send.disabled = reason !== "" || ui.input.value.trim() === "";
  const hideCancel = state.locked || !generating();
  if (hideCancel && document.activeElement === ui.cancel) ui.input.focus(); // keep focus in reach
  ui.cancel.hidden = hideCancel;
  ui.cancel.disabled = state.cancelling;
  say(ui.cancel, state.cancelling ? "Cancelling…" : "Cancel");
  ui.empty.hidden = !view.empty || state.phase === "connecting" || state.locked;
  ui.earlier.hidden = state.nextBefore === null || state.locked;
}

export function showAlert(text, { code = "", tone = "error" } = {}) {
  state.streamAlert = false;
  ui.alert.dataset.tone = tone;
  ui.alertText.dataset.code = code;
  ui.alertText.textContent = text;
  ui.alertClose.hidden = false;
}

export function showError(error) {
  const code = error instanceof ApiError ? error.code : "network";
  showAlert(explain(code, error.message), { code });
}

export function clearAlert() {
  state.streamAlert = false;
  ui.alert.dataset.tone = "";
  ui.alertText.dataset.code = "";
  ui.alertText.textContent = "";
  ui.alertClose.hidden = true;
}

export function isUnauthorized(error) {
  return error instanceof ApiError && error.code === "unauthorized";
}
