// The WebSocket broadcast clients in Node.js (its built-in WebSocket, `node --experimental-websocket`).
//
//   node --experimental-websocket bench/ws_clients.mjs URL PASSWORD CLIENTS CHANGES
//
// The same measurement as bench/ws_broadcast.py's Python clients, in a client cheap
// enough that 500 connections measure the server rather than the client: one writer
// changes `brightness`, the time until every reader has it is one sample, after
// 100 unmeasured warm-up changes. Prints one
// JSON line: {"clients", "p50", "p99", "max", "rate", "batch_one", "batch_three"} (ms,
// changes/s; the batch figures are p50 of three keys sent in one message or three).

const [url, password, clientsArg, changesArg] = process.argv.slice(2);
const N = Number(clientsArg);
const CHANGES = Number(changesArg);
const WARMUP = 100;
const BATCH_ROUNDS = 200;

function open(u) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u);
    ws.onopen = () => resolve(ws);
    ws.onerror = (e) => reject(new Error("connect failed: " + (e.message || e.type)));
  });
}

function pct(values, p) {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.floor(v.length * p))];
}

const readers = [];
for (let i = 0; i < N; i++) readers.push(await open(url));
const writer = await open(url);
await new Promise((resolve) => {
  writer.onmessage = () => resolve();
  writer.send(JSON.stringify({ username: "admin", password }));
});
// Start from the values the camera has now: a write of the same value is not broadcast.
const current = await new Promise((resolve) => {
  writer.onmessage = (ev) => resolve(JSON.parse(ev.data));
  writer.send(JSON.stringify({ get: ["brightness", "contrast", "saturation"] }));
});
const next = (v) => (v % 99) + 1; // 1..99, never equal to v

let waiting = null; // {key, value, left, resolve}
for (const ws of readers) {
  ws.onmessage = (ev) => {
    if (waiting === null) return;
    const msg = JSON.parse(ev.data);
    if (msg[waiting.key] === waiting.value && --waiting.left === 0) {
      const w = waiting;
      waiting = null;
      w.resolve(performance.now());
    }
  };
}
writer.onmessage = () => {};

// Send `messages`; resolve when every reader has seen `key` become `value` (sent last).
function send(messages, key, value) {
  return new Promise((resolve) => {
    waiting = { key, value, left: N, resolve };
    for (const m of messages) writer.send(JSON.stringify(m));
  });
}

const change = (key, value) => send([{ [key]: value }], key, value);

// Warm-up, not measured: the first changes after connecting pay for JIT
// compilation and cold caches on both sides (up to 15 ms each here).
let brightness = current.brightness;
for (let i = 0; i < WARMUP; i++) {
  brightness = next(brightness);
  await change("brightness", brightness);
}
const latencies = [];
for (let i = 0; i < CHANGES; i++) {
  brightness = next(brightness);
  const t0 = performance.now();
  const done = await change("brightness", brightness);
  latencies.push(done - t0);
}
// Sustained: back-to-back changes for 3 s, each waited for by all readers.
let sent = 0;
let contrast = current.contrast;
const t0 = performance.now();
while (performance.now() - t0 < 3000) {
  sent += 1;
  contrast = next(contrast);
  await change("contrast", contrast);
}
const rate = sent / ((performance.now() - t0) / 1000);
// The reference's batching tip: three keys in one message against three messages,
// alternating, each round timed until every reader has the last key.
const batched = [];
const separate = [];
let sat = current.saturation;
for (let i = 0; i < BATCH_ROUNDS * 2; i++) {
  brightness = next(brightness);
  contrast = next(contrast);
  sat = next(sat);
  const keys = { brightness, contrast, saturation: sat };
  const one = i % 2 === 0;
  const messages = one ? [keys] : Object.entries(keys).map(([k, v]) => ({ [k]: v }));
  const start = performance.now();
  await send(messages, "saturation", sat);
  (one ? batched : separate).push(performance.now() - start);
}
console.log(JSON.stringify({
  clients: N, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99),
  max: Math.max(...latencies), rate,
  batch_one: pct(batched, 0.5), batch_three: pct(separate, 0.5),
}));
for (const ws of [...readers, writer]) ws.close();
process.exit(0);
