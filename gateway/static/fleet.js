// The fleet dashboard: polls `/api/fleet` (one request: runtimes, members, Workers) and says when
// it last did; each Worker opens in the console (`/?runtime=R&worker=W`), the same console as the
// Companion's. Everything the gateway sends is set as text, never parsed as HTML.

import { Api, ApiError } from "./api.js";
import { explain } from "./errors.js";

const POLL_MS = 2000;
const LIVE_STATES = new Set(["pending", "idle", "running"]);

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const ui = {
  updated: $("fleet-updated"),
  refresh: $("fleet-refresh"),
  live: $("fleet-live"),
  error: $("fleet-error"),
  runtimes: $("runtimes").tBodies[0],
  members: $("members").tBodies[0],
  membersEmpty: $("members-empty"),
  workers: $("workers").tBodies[0],
  workersEmpty: $("workers-empty"),
  filter: $("worker-filter"),
  stateFilter: $("state-filter"),
  tokenForm: $("token-form"),
  tokenInput: $("token-input"),
  tokenError: $("token-error"),
};

const api = new Api(window.sessionStorage);
const state = { overview: null, timer: 0, loading: false, locked: false, polls: 0 };

// ------------------------------------------------------------------------------------- rendering

function cell(row, label, text, className = "") {
  const td = row.insertCell();
  td.dataset.label = label;
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function heartbeat(ageMs) {
  if (ageMs === null || ageMs === undefined) return "—";
  return ageMs < 1000 ? `${ageMs} ms ago` : `${(ageMs / 1000).toFixed(1)} s ago`;
}

function memberState(member) {
  if (!member.alive) return "dead";
  return member.draining ? "draining" : "alive";
}

function renderRuntimes(runtimes) {
  ui.runtimes.replaceChildren();
  for (const runtime of runtimes) {
    const row = ui.runtimes.insertRow();
    row.dataset.testid = "runtime-row";
    row.dataset.runtimeId = runtime.runtime_id;
    cell(row, "Runtime", runtime.runtime_id, "id");
    cell(row, "Kind", runtime.kind);
    cell(row, "Status", runtime.status).dataset.tone = runtime.status;
    cell(row, "Ready", runtime.ready ? "ready" : "not ready").dataset.tone =
      runtime.ready ? "ok" : "degraded";
    cell(row, "Workers", String(runtime.workers));
  }
}

function renderMembers(runtimes) {
  ui.members.replaceChildren();
  let count = 0;
  for (const runtime of runtimes) {
    if (runtime.kind !== "fleet") continue; // an embedded runtime's "member" is the gateway
    for (const member of runtime.members) {
      const row = ui.members.insertRow();
      const label = memberState(member);
      row.dataset.testid = "member-row";
      row.dataset.memberId = member.member_id;
      row.dataset.state = label;
      cell(row, "Member", member.member_id, "id");
      cell(row, "Runtime", runtime.runtime_id);
      cell(row, "State", label).dataset.tone = label;
      cell(row, "Capacity", String(member.capacity));
      cell(row, "Hosted", String(member.hosted)).dataset.testid = "member-hosted";
      cell(row, "Heartbeat", heartbeat(member.heartbeat_age_ms));
      count += 1;
    }
  }
  ui.membersEmpty.hidden = count > 0;
}

function matches(worker, text, wanted) {
  if (wanted === "live" && !LIVE_STATES.has(worker.state)) return false;
  if (wanted && wanted !== "live" && worker.state !== wanted) return false;
  if (!text) return true;
  const haystack = [
    worker.display_ref, worker.worker_id, worker.profile, worker.state, worker.host ?? "",
    worker.usage?.last_error ?? "",
  ].join(" ").toLowerCase();
  return haystack.includes(text);
}

function workerLink(worker) {
  const link = document.createElement("a");
  const query = new URLSearchParams({ runtime: worker.runtime_id, worker: worker.worker_id });
  link.href = `/?${query}`;
  link.dataset.testid = "worker-open";
  link.textContent = worker.display_ref;
  const id = document.createElement("small");
  id.textContent = worker.worker_id;
  const wrap = document.createDocumentFragment();
  wrap.append(link, id);
  return wrap;
}

function renderWorkers(workers) {
  const text = ui.filter.value.trim().toLowerCase();
  const wanted = ui.stateFilter.value;
  ui.workers.replaceChildren();
  let shown = 0;
  for (const worker of workers) {
    if (!matches(worker, text, wanted)) continue;
    const row = ui.workers.insertRow();
    row.dataset.testid = "worker-row";
    row.dataset.workerId = worker.worker_id;
    row.dataset.state = worker.state;
    cell(row, "Worker", "", "worker").append(workerLink(worker));
    cell(row, "State", worker.state).dataset.tone = worker.state;
    cell(row, "Host", worker.host ?? "—", "id").dataset.testid = "worker-host";
    cell(row, "Epoch", String(worker.epoch));
    cell(row, "Queue", String(worker.queue_depth));
    const usage = worker.usage ?? {};
    cell(row, "Tokens in / out", `${usage.input_tokens ?? 0} / ${usage.output_tokens ?? 0}`);
    cell(row, "Runs", String(usage.runs ?? 0));
    cell(row, "Last error", usage.last_error ?? "", "error");
    shown += 1;
  }
  ui.workersEmpty.hidden = shown > 0;
}

function render() {
  const overview = state.overview;
  if (overview === null) return;
  renderRuntimes(overview.runtimes);
  renderMembers(overview.runtimes);
  renderWorkers(overview.workers);
}

// --------------------------------------------------------------------------------------- polling

function showError(error) {
  const code = error instanceof ApiError ? error.code : "network";
  ui.error.textContent = explain(code, error.message);
  ui.error.dataset.code = code;
  ui.error.hidden = false;
}

function lock() {
  const rejected = api.token !== "";
  api.token = "";
  state.locked = true;
  clearTimeout(state.timer);
  ui.tokenError.hidden = !rejected;
  ui.tokenForm.hidden = false;
  ui.updated.textContent = "Token needed";
  ui.tokenInput.focus();
}

function schedule() {
  clearTimeout(state.timer);
  if (ui.live.checked && !state.locked) state.timer = setTimeout(poll, POLL_MS);
}

async function poll() {
  if (state.loading || state.locked) return;
  state.loading = true;
  ui.refresh.disabled = true;
  try {
    state.overview = await api.get("/api/fleet");
    state.polls += 1;
    ui.error.hidden = true;
    render();
    const missing = state.overview.unavailable ?? [];
    const note = missing.length ? ` · not answering: ${missing.join(", ")}` : "";
    ui.updated.textContent = `Updated ${new Date().toLocaleTimeString()}${note}`;
    ui.updated.dataset.polls = String(state.polls);
  } catch (error) {
    if (error instanceof ApiError && error.code === "unauthorized") {
      lock();
      return;
    }
    showError(error);
    ui.updated.textContent = "Not updated: the last refresh failed";
  } finally {
    state.loading = false;
    ui.refresh.disabled = false;
    schedule();
  }
}

ui.refresh.addEventListener("click", poll);
ui.live.addEventListener("change", () => (ui.live.checked ? poll() : schedule()));
ui.filter.addEventListener("input", render);
ui.stateFilter.addEventListener("change", render);
ui.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = ui.tokenInput.value.trim();
  if (!token) return;
  api.token = token;
  ui.tokenInput.value = "";
  ui.tokenForm.hidden = true;
  state.locked = false;
  poll();
});

poll();
