// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so the
// console reads the stream itself and follows it from its last cursor across dropped connections.

/** Incremental parser of the text/event-stream format (comments are heartbeats and are skipped). */
export class SseParser {
  constructor() {
    this.buffer = "";
    this.lastEventId = "";
    this.resetMessage();
  }

  resetMessage() {
    this.data = [];
    this.event = "";
    this.id = null;
  }

  /** Feeds decoded text; returns the messages it completed, each `{id, event, data}`. */
  push(text) {
    this.buffer += text;
    const messages = [];
    let start = 0;
    for (;;) {
      let end = start;
      while (end < this.buffer.length && this.buffer[end] !== "\n" && this.buffer[end] !== "\r") {
        end += 1;
      }
      if (end >= this.buffer.length) break;
      // A "\r" that ends the chunk may be the first half of a "\r\n" split across two reads.
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) break;
      const width = this.buffer[end] === "\r" && this.buffer[end + 1] === "\n" ? 2 : 1;
      const message = this.line(this.buffer.slice(start, end));
      if (message !== null) messages.push(message);
      start = end + width;
    }
    this.buffer = this.buffer.slice(start);
    return messages;
  }

  /** The stream ended: a final lone "\r" was a line end after all. A message without its blank
   * line is incomplete and, as the format says, dropped. */
  end() {
    return this.buffer.endsWith("\r") ? this.push("\n") : [];
  }

  line(line) {
    if (line === "") return this.dispatch();
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }

  dispatch() {
    if (this.id !== null) this.lastEventId = this.id;
    const message = this.data.length
      ? { id: this.id, event: this.event || "message", data: this.data.join("\n") }
      : null;
    this.resetMessage();
    return message;
  }
}

const HEALTHY_AFTER_MS = 10_000;

/**
 * Follows an event stream from a cursor. `open(cursor, signal)` returns a fetch Response (or throws);
 * every message is handed to `onMessage` and its id becomes the cursor to resume from, so a
 * reconnection neither loses nor repeats events. `onState` hears "open" and "reconnecting";
 * `onFatal(error)` hears an error that reconnecting cannot fix (`isFatal(error)` decides).
 */
export class EventFollower {
  constructor({ open, onMessage, onState, onFatal, isFatal, minDelayMs = 250, maxDelayMs = 5000 }) {
    this.open = open;
    this.onMessage = onMessage;
    this.onState = onState;
    this.onFatal = onFatal;
    this.isFatal = isFatal;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.cursor = "";
    this.reconnects = 0;
    this.running = false;
    this.generation = 0;
    this.connection = null;
    this.wake = null;
    this.seen = new Set();
  }

  start(cursor) {
    this.stop();
    this.cursor = cursor || "";
    this.running = true;
    this.seen.clear();
    this.run(this.generation);
  }

  /** Ends the current loop for good; a later start() begins a new one. */
  stop() {
    this.generation += 1;
    this.running = false;
    this.connection?.abort();
    this.wake?.();
  }

  /** Cuts the current connection the way a network failure would; the follower reconnects. */
  drop() {
    this.connection?.abort();
  }

  async run(generation) {
    // Each loop owns a generation: one that stop() superseded exits at its next step, even
    // when a new loop is already running.
    const current = () => this.running && this.generation === generation;
    let failures = 0;
    while (current()) {
      const connection = new AbortController();
      this.connection = connection;
      const openedAt = Date.now();
      let gotEvent = false;
      try {
        const response = await this.open(this.cursor, connection.signal);
        if (current() && !connection.signal.aborted) {
          this.onState("open");
          for await (const message of readMessages(response, connection.signal)) {
            if (!current()) return;
            gotEvent = true;
            this.deliver(message);
          }
        }
      } catch (error) {
        if (!current()) return;
        if (this.isFatal(error)) {
          this.running = false;
          this.onFatal(error);
          return;
        }
      }
      if (!current()) return;
      failures = gotEvent || Date.now() - openedAt > HEALTHY_AFTER_MS ? 0 : failures + 1;
      this.reconnects += 1;
      this.onState("reconnecting");
      await this.pause(this.backoffMs(failures));
    }
  }

  deliver(message) {
    if (message.id !== null && message.id !== "") {
      // Cursors are compared for equality only: an exact repeat is dropped, never re-applied.
      if (this.seen.has(message.id)) return;
      this.remember(message.id);
      this.cursor = message.id;
    }
    try {
      this.onMessage(message);
    } catch (error) {
      // A message the page cannot show must not tear the stream down and replay it forever.
      console.error("could not apply a stream message", error);
    }
  }

  remember(cursor) {
    this.seen.add(cursor);
    if (this.seen.size > 2000) this.seen.delete(this.seen.values().next().value);
  }

  backoffMs(failures) {
    const ceiling = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** failures);
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

async function* readMessages(response, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const cancel = () => reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (signal.aborted) throw new DOMException("The stream was dropped.", "AbortError");
      if (done) {
        yield* parser.push(decoder.decode());
        yield* parser.end();
        return;
      }
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}
