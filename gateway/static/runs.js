// What the event stream says about the Companion's runs, applied to the transcript view: turns
// appear, answers grow, restart on a new attempt, and end with a result. The console asks `busy`.

import { explain } from "./errors.js";

/** Why a run ended badly, in words: its `error` event says best, else its reason. */
function outcomeWords(result, failure, reason) {
  if (result === "finished" || result === "cancelled") return "";
  if (failure !== undefined) return explain(failure.code, failure.message);
  return explain(result === "timed_out" ? "timeout" : reason || "failed");
}

export class Runs {
  /**
   * `report({text, code, tone, failure, stream})` tells the console what to show: `failure` puts
   * the status in error, `stream` marks a failure of the stream itself (cleared on reconnect).
   */
  constructor(view, report) {
    this.view = view;
    this.report = report;
    this.records = new Map(); // run_id -> {runId, inputId, attempt, streamed, final, result}
    this.reset();
  }

  reset() {
    this.active = null; // run_id of the answer streaming now
    this.awaiting = null; // input_id the gateway accepted whose run has not finished yet
    this.workerRunning = false;
    this.finished = new Set(); // input_ids whose run_finished was seen
    this.errors = new Map(); // run_id -> {code, message} from `error` events
    this.records.clear();
  }

  get busy() {
    return this.active !== null || this.awaiting !== null || this.workerRunning;
  }

  /** The gateway accepted `inputId`: busy until its run finishes (unless it already has). */
  accepted(inputId) {
    if (!this.finished.has(inputId)) this.awaiting = inputId;
  }

  /** Attaches to the answer in flight when the console opened: its text so far, at once. */
  attach(flight) {
    const turn = this.view.startAnswer(flight.run_id);
    if (turn.final) return;
    this.view.setText(turn, flight.text ?? "");
    this.active = flight.run_id;
    const run = this.record(flight.run_id, flight.input_id);
    run.attempt = flight.attempt ?? 1;
    run.streamed = flight.text ?? "";
  }

  snapshot() {
    return [...this.records.values()].map((run) => ({ ...run }));
  }

  apply(event) {
    const handler = this[`on_${event.type}`];
    if (typeof handler === "function") handler.call(this, event);
  }

  record(runId, inputId) {
    let run = this.records.get(runId);
    if (run === undefined) {
      run = { runId, inputId, attempt: 1, streamed: "", final: null, result: null, usage: null };
      this.records.set(runId, run);
    }
    return run;
  }

  /** The turn a live event writes to, or null when that answer is already final. */
  live(event) {
    const turn = this.view.startAnswer(event.run_id, event.ts);
    if (turn.final) return null;
    this.active = event.run_id;
    return turn;
  }

  on_user_message(event) {
    this.view.user(event.input_id, event.text ?? "", { ts: event.ts });
  }

  on_run_started(event) {
    const turn = this.live(event);
    if (turn === null) return;
    const run = this.record(event.run_id, event.input_id);
    run.attempt = event.attempt ?? 1;
    if (run.attempt >= 2) {
      // The host was lost and the run starts over: the abandoned attempt's text goes.
      run.streamed = "";
      this.view.setText(turn, "");
      turn.note.textContent = `Attempt ${run.attempt}: the first host was lost, answering again.`;
    }
  }

  on_text_delta(event) {
    const turn = this.live(event);
    if (turn === null) return;
    this.record(event.run_id, event.input_id).streamed += event.text ?? "";
    this.view.appendText(turn, event.text ?? "");
  }

  on_text_done(event) {
    const turn = this.live(event);
    if (turn === null) return;
    this.record(event.run_id, event.input_id).final = event.text ?? "";
    this.view.setText(turn, event.text ?? "");
  }

  on_usage(event) {
    this.record(event.run_id, event.input_id).usage = {
      input: event.input_tokens ?? 0,
      output: event.output_tokens ?? 0,
    };
  }

  on_state_changed(event) {
    this.workerRunning = event.state === "running";
  }

  on_error(event) {
    const text = explain(event.code, event.message);
    if (event.run_id) {
      this.errors.set(event.run_id, { code: event.code, message: event.message });
      this.report({ text, code: event.code });
    } else {
      // The stream itself failed (its last frame): the follower reconnects or reloads.
      this.report({ text, code: event.code, stream: true });
    }
  }

  on_run_finished(event) {
    const result = event.result ?? "finished";
    const failure = this.errors.get(event.run_id);
    const turn = this.view.answer(event.run_id);
    if (turn === undefined) {
      // Ended before any answer (cancelled while queued, say): mark the person's message.
      this.view.userTurn(event.input_id)?.mark(result);
    } else if (!turn.final) {
      this.view.finish(turn, result, outcomeWords(result, failure, event.reason));
    }
    this.record(event.run_id, event.input_id).result = result;
    this.finished.add(event.input_id);
    if (this.awaiting === event.input_id) this.awaiting = null;
    if (this.active === event.run_id) this.active = null;
    this.workerRunning = false; // a later state_changed says otherwise if another run follows
    if (result === "cancelled") {
      this.report({ text: explain("cancelled"), code: "cancelled", tone: "info" });
    } else if (result !== "finished") {
      const code = failure?.code ?? (result === "timed_out" ? "timeout" : event.reason || "failed");
      this.report({ text: outcomeWords(result, failure, event.reason), code, failure: true });
    }
  }
}
