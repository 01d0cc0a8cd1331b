// Which Worker a console page talks to: the Companion at `/`, or any Worker of any runtime at
// `/?runtime=R&worker=W` (the fleet dashboard opens Workers so). One console, any Worker: only
// the routes differ, so the rest of the console never knows which it shows.

const COMPANION = "/api/companion";

function workerTarget(runtimeId, workerId) {
  const base =
    `/api/runtimes/${encodeURIComponent(runtimeId)}/workers/${encodeURIComponent(workerId)}`;
  return {
    companion: false,
    runtimeId,
    workerId,
    detail: base,
    transcript: `${base}/transcript`,
    stream: `${base}/events/stream`,
    send: `${base}/inputs`,
    cancel: `${base}/cancel`,
    stop: `${base}/stop`,
  };
}

/** The routes of the Worker named in `search` (a location's query), else the Companion's. */
export function consoleTarget(search) {
  const params = new URLSearchParams(search);
  const runtimeId = params.get("runtime");
  const workerId = params.get("worker");
  if (runtimeId && workerId) return workerTarget(runtimeId, workerId);
  return {
    companion: true,
    runtimeId: null,
    workerId: null,
    detail: COMPANION,
    transcript: `${COMPANION}/transcript`,
    stream: `${COMPANION}/events/stream`,
    send: `${COMPANION}/messages`,
    cancel: null, // found on first use: the shortcut route, else the Worker's own
    stop: null, // the Companion is not stopped from the console
  };
}

/** The console's page in a Worker's words, and its Stop button (Workers only, not the Companion). */
export function mountWorkerControls({ target, api, button, onStopped, onError }) {
  if (target.companion) return;
  const input = document.querySelector('[data-testid="composer-input"]');
  const composer = document.querySelector('[data-testid="composer"]');
  const transcript = document.querySelector('[data-testid="transcript"]');
  const empty = document.querySelector('[data-testid="empty"]');
  input.placeholder = "Message this Worker";
  composer.setAttribute("aria-label", "Message this Worker");
  transcript.setAttribute("aria-label", "Conversation with this Worker");
  empty.textContent = "No messages yet.";
  button.hidden = false;
  let stopping = false;
  button.addEventListener("click", async () => {
    if (stopping) return;
    stopping = true;
    button.disabled = true;
    button.textContent = "Stopping…";
    try {
      const detail = await api.post(target.stop);
      button.textContent = "Stopped";
      onStopped(detail);
    } catch (error) {
      stopping = false;
      button.disabled = false;
      button.textContent = "Stop";
      onError(error);
    }
  });
}
