// The console of the Companion or of any Worker (target.js): loads the transcript, follows the
// event stream from a cursor, sends messages with an idempotency key, cancels, and says what went
// wrong in words.

import { Api, ApiError } from "./api.js";
import { explain, isTransient } from "./errors.js";
import { Runs } from "./runs.js";
import { EventFollower } from "./sse.js";
import { consoleTarget, mountWorkerControls } from "./target.js";
import { TranscriptView } from "./transcript.js";

const target = consoleTarget(window.location.search);
const PAGE_SIZE = 50;
const SEND_ATTEMPTS = 5;
const FATAL_STREAM_CODES = new Set([
  "unauthorized", "cursor_expired", "worker_not_found", "runtime_not_found",
]);

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const ui = {
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

const api = new Api(window.sessionStorage);
const view = new TranscriptView(ui.transcript, ui.conversation);
const runs = new Runs(view, ({ text, code, tone = "error", failure = false, stream = false }) => {
  showAlert(text, { code, tone });
  if (failure) state.failure = code;
  if (stream) state.streamAlert = true;
});

const state = {
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

function generating() {
  return runs.busy;
}

function status() {
  if (state.locked) return ["locked", "Token needed"];
  if (state.phase === "reconnecting") return ["reconnecting", "Reconnecting…"];
  if (state.phase === "connecting") return ["connecting", "Connecting…"];
  if (state.stopped && !generating()) return ["stopped", "Stopped"];
  if (state.sending) return ["sending", "Sending…"];
  if (generating()) return ["generating", "Generating…"];
  if (state.failure !== null) return ["error", "Error"];
  return ["idle", "Idle"];
}

function blockedReason() {
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

function update() {
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

function showAlert(text, { code = "", tone = "error" } = {}) {
  state.streamAlert = false;
  ui.alert.dataset.tone = tone;
  ui.alertText.dataset.code = code;
  ui.alertText.textContent = text;
  ui.alertClose.hidden = false;
}

function showError(error) {
  const code = error instanceof ApiError ? error.code : "network";
  showAlert(explain(code, error.message), { code });
}

function clearAlert() {
  state.streamAlert = false;
  ui.alert.dataset.tone = "";
  ui.alertText.dataset.code = "";
  ui.alertText.textContent = "";
  ui.alertClose.hidden = true;
}

// ------------------------------------------------------------------------------------- the token

function lock() {
  const rejected = api.token !== "";
  api.token = "";
  state.locked = true;
  follower.stop();
  clearTimeout(state.bootTimer);
  ui.tokenError.hidden = !rejected;
  ui.tokenForm.hidden = false;
  clearAlert();
  update();
  ui.tokenInput.focus();
}

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

function isUnauthorized(error) {
  return error instanceof ApiError && error.code === "unauthorized";
}

// ---------------------------------------------------------------------------------- loading state

function companionRef(detail) {
  return detail.display_ref || `${detail.display_name}@${detail.runtime_id}`;
}

function applyDetail(detail) {
  state.detail = detail;
  ui.ref.textContent = companionRef(detail);
  document.title = `${companionRef(detail)} · Yoi Fleet`;
  const workspace = typeof detail.workspace === "string" ? detail.workspace : detail.workspace?.name;
  ui.workspace.hidden = !workspace;
  ui.workspaceName.textContent = workspace ?? "";
}

/** Transcript entries oldest first; a stable sort keeps the gateway's order for equal times. */
function chronological(entries) {
  return [...(entries ?? [])].sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
}

/** (Re)loads everything: detail first, so its cursor is never newer than the transcript. */
async function boot() {
  clearTimeout(state.bootTimer);
  follower.stop();
  const generation = ++state.boots; // a newer boot supersedes this one
  state.phase = "connecting";
  update();
  let detail;
  let page;
  try {
    detail = await api.get(target.detail);
    page = await api.get(`${target.transcript}?limit=${PAGE_SIZE}`);
  } catch (error) {
    if (generation !== state.boots) return;
    if (isUnauthorized(error)) {
      lock();
      return;
    }
    showError(error);
    state.failure = error.code ?? "network";
    state.bootFailures += 1;
    const delayMs = Math.min(10_000, 500 * 2 ** state.bootFailures);
    state.bootTimer = setTimeout(boot, delayMs);
    update();
    return;
  }
  if (generation !== state.boots) return;
  if (state.bootFailures > 0) clearAlert();
  state.bootFailures = 0;
  state.failure = null;
  state.dropped = false;
  applyDetail(detail);
  state.stopped = !target.companion && (detail.state === "stopped" || detail.state === "failed");
  view.clear();
  runs.reset();
  view.addEntries(chronological(page.entries));
  state.nextBefore = page.next_before ?? null;
  runs.workerRunning = detail.state === "running";
  let cursor = detail.cursor ?? "";
  const flight = detail.in_flight;
  if (flight) {
    // Attach mid-answer: show the answer so far at once, then stream on from its cursor.
    runs.attach(flight);
    cursor = flight.cursor ?? cursor;
  }
  view.scrollToEnd();
  follower.start(cursor);
  update();
}

async function loadEarlier() {
  const before = state.nextBefore;
  if (before === null) return;
  ui.earlier.disabled = true;
  try {
    const page = await api.get(
      `${target.transcript}?limit=${PAGE_SIZE}&before=${encodeURIComponent(before)}`,
    );
    const fromEnd = ui.conversation.scrollHeight - ui.conversation.scrollTop;
    view.addEntries(chronological(page.entries), { atStart: true });
    ui.conversation.scrollTop = ui.conversation.scrollHeight - fromEnd;
    state.nextBefore = page.next_before ?? null;
  } catch (error) {
    if (isUnauthorized(error)) lock();
    else showError(error);
  } finally {
    ui.earlier.disabled = false;
    update();
  }
}

/**
 * The stream reopened after a drop, perhaps to a gateway that restarted meanwhile. The same
 * Worker replays every event after our cursor, so a run it still has streams on and one that
 * ended shows its outcome. Two things a replay cannot fix reload from the server's own state
 * (transcript, detail, in-flight answer): a different Companion (the old one is gone), and a
 * console that shows an answer generating while the server has nothing running.
 */
async function reconcile() {
  const generation = state.boots;
  let detail;
  try {
    detail = await api.get(target.detail);
  } catch (error) {
    if (isUnauthorized(error)) lock();
    return; // the stream's own reconnecting goes on; the next open reconciles again
  }
  if (generation !== state.boots || state.locked) return;
  state.reconciles += 1;
  const moved = state.detail === null || detail.worker_id !== state.detail.worker_id;
  const serverIdle = detail.state !== "running" && !detail.in_flight;
  if (moved || (serverIdle && generating() && !state.sending)) {
    boot();
    return;
  }
  applyDetail(detail);
  update();
}

// ------------------------------------------------------------------------------------ the stream

function onMessage(message) {
  const event = JSON.parse(message.data);
  event.type ??= message.event;
  runs.apply(event);
  update();
}

const follower = new EventFollower({
  open: (cursor, signal) => api.openStream(target.stream, cursor, signal),
  onMessage,
  onState(connection) {
    state.phase = connection === "open" ? "ready" : "reconnecting";
    if (connection === "open" && state.streamAlert) clearAlert();
    if (connection === "open" && state.dropped) {
      state.dropped = false;
      reconcile();
    } else if (connection !== "open") {
      state.dropped = true;
    }
    update();
  },
  isFatal: (error) => error instanceof ApiError && FATAL_STREAM_CODES.has(error.code),
  onFatal(error) {
    if (isUnauthorized(error)) {
      lock();
      return;
    }
    showError(error);
    boot();
  },
});

// ------------------------------------------------------------------------------- sending, cancel

function newInputId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const wait = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/** POSTs the message; a transient failure is retried with the same input_id, so at most one run. */
async function postMessage(body) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await api.post(target.send, body);
    } catch (error) {
      if (!(error instanceof ApiError) || !isTransient(error.code) || attempt >= SEND_ATTEMPTS) {
        throw error;
      }
      showAlert(explain(error.code), { code: error.code, tone: "info" });
      await wait(Math.min(4000, 500 * 2 ** (attempt - 1)));
    }
  }
}

/** Sends `raw` as the person's message; resolves true once the gateway accepted it. */
async function send(raw) {
  const text = String(raw).replace(/\s+$/, "");
  if (text.trim() === "") return false;
  const inputId = newInputId();
  clearAlert();
  state.failure = null;
  state.sending = true;
  view.user(inputId, text, { ts: Date.now() / 1000, pending: true });
  view.scrollToEnd();
  update();
  try {
    await postMessage({ text, input_id: inputId, strategy: "reject" });
    view.user(inputId, text);
    runs.accepted(inputId);
    // Clear only the "retrying" notice of this send: the stream may already have told of the
    // run's own outcome (a fast failure can arrive before this answer does).
    if (isTransient(ui.alertText.dataset.code)) clearAlert();
    return true;
  } catch (error) {
    view.withdrawUser(inputId);
    if (ui.input.value.trim() === "") ui.input.value = text;
    if (isUnauthorized(error)) {
      lock();
    } else {
      showError(error);
      if (error.code !== "worker_busy") state.failure = error.code ?? "network";
    }
    return false;
  } finally {
    state.sending = false;
    update();
  }
}

async function postCancel() {
  if (state.cancelPath !== null) return api.post(state.cancelPath);
  try {
    const answer = await api.post(`${target.detail}/cancel`);
    state.cancelPath = `${target.detail}/cancel`;
    return answer;
  } catch (error) {
    // A cancel has no body, so a 404/405, or a 422 `invalid_input` (this gateway's answer to an
    // unknown route), means the shortcut route is missing, not that the Companion is.
    const missingRoute = error instanceof ApiError && (
      ((error.status === 404 || error.status === 405) &&
        error.code !== "worker_not_found" && error.code !== "runtime_not_found") ||
      (error.status === 422 && error.code === "invalid_input"));
    if (!missingRoute || state.detail === null) throw error;
    // No companion shortcut on this gateway: cancel through the Worker's own route.
    const { runtime_id: runtimeId, worker_id: workerId } = state.detail;
    state.cancelPath =
      `/api/runtimes/${encodeURIComponent(runtimeId)}/workers/${encodeURIComponent(workerId)}/cancel`;
    return api.post(state.cancelPath);
  }
}

async function cancel() {
  if (!generating() || state.cancelling || state.locked) return;
  state.cancelling = true;
  update();
  try {
    const answer = await postCancel();
    // Nothing to cancel, or another Companion answered: the server's state wins over ours.
    const other = state.detail !== null && answer?.worker_id !== state.detail.worker_id;
    if (other || (answer?.cancelled === false && answer?.state !== "running")) boot();
  } catch (error) {
    if (isUnauthorized(error)) lock();
    else showError(error);
  } finally {
    state.cancelling = false;
    update();
  }
}

// --------------------------------------------------------------------------------------- wiring

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
