// The official openai npm client against a Yoi Fleet gateway; driven by tests/openai/test_npm_client.py.
// Env: YOI_BASE_URL (…/v1), YOI_TOKEN, YOI_MODEL, YOI_CONVERSATION. Prints one JSON object.
import OpenAI from "openai";

const baseURL = process.env.YOI_BASE_URL;
const model = process.env.YOI_MODEL;
const user = process.env.YOI_CONVERSATION;
const client = new OpenAI({ apiKey: process.env.YOI_TOKEN, baseURL, maxRetries: 0, timeout: 30000 });

async function failure(promise) {
  try {
    await promise;
    return null;
  } catch (err) {
    return { status: err.status ?? null, error: err.error ?? null, name: err.constructor.name };
  }
}

const calls = [];
const first = await client.chat.completions.create({
  model,
  user,
  messages: [{ role: "user", content: "js call one" }],
});
calls.push({ text: first.choices[0].message.content, finish: first.choices[0].finish_reason, usage: first.usage });

const stream = await client.chat.completions.create({
  model,
  user,
  messages: [{ role: "user", content: "js call two" }],
  stream: true,
  stream_options: { include_usage: true },
});
let text = "";
let finish = null;
let usage = null;
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    text += choice.delta?.content ?? "";
    finish = choice.finish_reason ?? finish;
  }
}
calls.push({ text, finish, usage, chunks });

const third = await client.chat.completions.create({
  model,
  user,
  messages: [
    { role: "user", content: "js call one" },
    { role: "assistant", content: first.choices[0].message.content },
    { role: "user", content: "js call three" },
  ],
});
calls.push({ text: third.choices[0].message.content, finish: third.choices[0].finish_reason, usage: third.usage });

const models = (await client.models.list()).data.map((m) => m.id);
const badToken = await failure(
  new OpenAI({ apiKey: "wrong-token", baseURL, maxRetries: 0 }).chat.completions.create({
    model,
    messages: [{ role: "user", content: "never sent" }],
  }),
);
const unknownModel = await failure(
  client.chat.completions.create({ model: "no-such-profile", messages: [{ role: "user", content: "x" }] }),
);
const invalidBody = await failure(client.chat.completions.create({ model, messages: [] }));

console.log(JSON.stringify({ calls, models, badToken, unknownModel, invalidBody }));
