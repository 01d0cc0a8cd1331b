// Typed error codes in words a person understands. The gateway's own message is shown only where
// it adds something the code cannot say (what exactly was invalid).

const WORDS = {
  worker_busy: "The Companion is still answering — wait or cancel.",
  provider_error: "The language model could not answer. Try again in a moment.",
  timeout: "The answer took too long and was stopped.",
  timed_out: "The answer took too long and was stopped.",
  cancelled: "Cancelled",
  runtime_unavailable: "The runtime is unavailable — retrying…",
  capacity_exhausted: "No runtime has room for the Companion right now — retrying…",
  network: "The gateway cannot be reached — retrying…",
  unauthorized: "This gateway needs an API token.",
  payload_too_large: "That message is too long to send. Shorten it and try again.",
  rate_limited: "Too many messages at once — wait a moment and try again.",
  worker_stopped: "The Companion has been stopped.",
  worker_not_found: "The Companion could not be found — reloading…",
  runtime_not_found: "The Companion's runtime could not be found.",
  cursor_expired: "Part of the conversation expired — reloading…",
  not_running: "There was nothing to cancel.",
  unsupported_operation: "This runtime does not support that.",
  host_lost: "The runtime hosting the Companion was lost.",
  turn_timeout: "The answer took too long and was stopped.",
  internal_error: "The Companion failed to answer. Try again in a moment.",
};

/** A sentence for `code`; `message` is the gateway's own wording, used for invalid input only. */
export function explain(code, message = "") {
  if (code === "invalid_input") {
    return message ? `That message cannot be sent: ${message}` : "That message cannot be sent.";
  }
  if (code === "failed") return "The answer failed.";
  return WORDS[code] ?? (message ? `Something went wrong: ${message}` : "Something went wrong.");
}

/** Whether a request failing with `code` is worth repeating unchanged (same input_id). */
export function isTransient(code) {
  return code === "network" || code === "runtime_unavailable" || code === "capacity_exhausted";
}

export const RESULT_LABELS = {
  finished: "",
  cancelled: "Cancelled",
  failed: "Failed",
  timed_out: "Timed out",
};
