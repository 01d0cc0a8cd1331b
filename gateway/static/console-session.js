// What the console loads and follows: the Worker's detail and transcript (again after a drop
// that may have been a gateway restart), earlier pages, its event stream from a cursor, and the
// lock that asks for a token when the gateway refuses ours.
// Apart from console.js so a (re)load and the stream that follows it read in one place.

import { ApiError } from "./api.js";
import {
  api, clearAlert, generating, isUnauthorized, runs, showError, state, target, ui,
  update, view,
} from "./console-page.js";
import { EventFollower } from "./sse.js";

const PAGE_SIZE = 50;
const FATAL_STREAM_CODES = new Set([
  "unauthorized", "cursor_expired", "worker_not_found", "runtime_not_found",
]);

// ------------------------------------------------------------------------------------- the token

export function lock() {
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
export async function boot() {
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

export async function loadEarlier() {
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

export const follower = new EventFollower({
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
