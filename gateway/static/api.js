// The gateway's HTTP API as the console uses it. The bearer token lives in sessionStorage and
// travels only in the Authorization header, on every request including the event stream.

const TOKEN_KEY = "yoi-fleet.api-token";

// When a reply carries no typed body (a proxy answered, say), its status still says what happened.
const CODE_BY_STATUS = {
  401: "unauthorized",
  413: "payload_too_large",
  429: "rate_limited",
  503: "runtime_unavailable",
};

/** A typed gateway error: the body `{"error": {code, message, retryable}}`, or what stood in for it. */
export class ApiError extends Error {
  constructor({ code, message = "", retryable = false, status = 0, typed = false }) {
    super(message || code);
    this.name = "ApiError";
    this.code = code;
    this.retryable = retryable;
    this.status = status;
    this.typed = typed;
  }
}

export async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error === "object" && typeof error.code === "string") {
    return new ApiError({
      code: error.code,
      message: typeof error.message === "string" ? error.message : "",
      retryable: Boolean(error.retryable),
      status: response.status,
      typed: true,
    });
  }
  return new ApiError({
    code: CODE_BY_STATUS[response.status] ?? `http_${response.status}`,
    message: response.statusText,
    retryable: response.status >= 500,
    status: response.status,
  });
}

function unreachable() {
  return new ApiError({ code: "network", message: "The gateway cannot be reached.", retryable: true });
}

export class Api {
  constructor(storage) {
    this.storage = storage;
  }

  get token() {
    try {
      return this.storage.getItem(TOKEN_KEY) ?? "";
    } catch {
      return "";
    }
  }

  set token(value) {
    try {
      if (value) this.storage.setItem(TOKEN_KEY, value);
      else this.storage.removeItem(TOKEN_KEY);
    } catch {
      // Storage may be disabled; the person will be asked again after a reload.
    }
  }

  headers(extra) {
    const headers = new Headers(extra);
    const token = this.token;
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return headers;
  }

  async request(method, path, body) {
    const init = { method, cache: "no-store", credentials: "same-origin" };
    if (body === undefined) {
      init.headers = this.headers({ Accept: "application/json" });
    } else {
      init.headers = this.headers({ Accept: "application/json", "Content-Type": "application/json" });
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw unreachable();
    }
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return null;
    return response.json();
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  /** Opens an SSE stream after `cursor` (query and Last-Event-ID agree); resolves once it answers. */
  async openStream(path, cursor, signal) {
    const headers = this.headers({ Accept: "text/event-stream" });
    let url = path;
    if (cursor) {
      url = `${path}?after=${encodeURIComponent(cursor)}`;
      headers.set("Last-Event-ID", cursor);
    }
    let response;
    try {
      response = await fetch(url, { headers, signal, cache: "no-store", credentials: "same-origin" });
    } catch (error) {
      if (signal.aborted) throw error;
      throw unreachable();
    }
    if (!response.ok) throw await errorFrom(response);
    return response;
  }
}
