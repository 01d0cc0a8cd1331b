// Sending and cancelling: a message goes with a fresh idempotency key (input_id), retried on
// a transient failure under the same key so it runs at most once; a cancel finds the Companion's
// shortcut route or falls back to the Worker's own.
// Apart from console.js so what the composer's buttons do reads in one place.

import { ApiError } from "./api.js";
import { explain, isTransient } from "./errors.js";
import {
  api, clearAlert, generating, isUnauthorized, runs, showAlert, showError, state, target, ui,
  update, view,
} from "./console-page.js";
import { boot, lock } from "./console-session.js";

const SEND_ATTEMPTS = 5;

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
export async function send(raw) {
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

export async function cancel() {
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
