// The camera's dashboard: live view over WebRTC and the settings, generated from
// GET /api/settings/schema, kept live over the WebSocket (rotordream.js).
import { Camera } from "/client/rotordream.js";

const $ = (id) => document.getElementById(id);
const camera = new Camera();
const state = {};          // the last values the camera reported
let schema = null;         // GET /api/settings/schema for the current user
let watcher = null;        // the camera.watch() of the current user
let view = null;           // the live view (camera.live), null while on snapshots
let snapshotTimer = null;
const CSRF = "rotordream-csrf";  // sessionStorage: the cookie session's CSRF token

// Keys shown in the settings, by group; others of the schema go to "Other".
const GROUPS = [
  ["Image", ["brightness", "contrast", "saturation", "sharpness", "gain", "red-gain",
    "blue-gain", "auto-exposure", "auto-white-balance", "noise-supression"]],
  ["Lights and camera heads", ["cam1-light", "cam2-light", "main-camera", "cam1-exists",
    "cam2-exists"]],
  ["Streams", ["resolution", "fps", "stream1-bitrate", "stream1-gop", "stream2-resolution",
    "stream2-fps", "stream2-bitrate", "stream2-gop", "jpeg-quality"]],
  ["Device", ["device-name", "device-location", "discovery-mode"]],
];
// Keys the settings leave out: commands and the motor and recording state.
const NOT_SETTINGS = new Set(["record", "snap", "rotor-enabled", "rotor-speed",
  "rotor-direction", "rotor-rpm", "pan", "tilt", "pan-position", "tilt-position",
  "motor-state"]);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node && !k.includes("-")) node[k] = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function message(e) {
  return e && e.message ? e.message : String(e);
}

// -- account ----------------------------------------------------------------------------

function showAccount() {
  const signedIn = schema && schema.authenticated;
  $("who").textContent = signedIn ? `${schema.user} (${schema.role})`
    : `anonymous (${schema ? schema.role : "?"})`;
  $("show-login").hidden = !!signedIn;
  $("logout").hidden = !signedIn;
}

$("show-login").addEventListener("click", () => {
  $("login").hidden = false;
  $("login").elements.username.focus();
});
$("cancel-login").addEventListener("click", () => {
  $("login").hidden = true;
  $("show-login").focus();
});
$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = $("login");
  $("login-error").textContent = "";
  try {
    await camera.login(form.elements.username.value, form.elements.password.value);
    sessionStorage.setItem(CSRF, camera._csrf);
    form.elements.password.value = "";
    form.hidden = true;
    await start();
    $("logout").focus();
  } catch (e) {
    $("login-error").textContent = message(e);
  }
});
$("logout").addEventListener("click", async () => {
  try {
    await camera.logout();
  } catch (e) {
    // The session may be gone already (expired, revoked): the page is anonymous either way.
  }
  sessionStorage.removeItem(CSRF);
  await start();
  $("show-login").focus();
});

// -- settings ---------------------------------------------------------------------------

const LABELS = {"red-gain": "Red gain", "blue-gain": "Blue gain", "fps": "Frame rate",
  "noise-supression": "Noise suppression", "jpeg-quality": "JPEG quality"};

function label(key) {
  return LABELS[key] || key.charAt(0).toUpperCase() + key.slice(1).replace(/-/g, " ");
}

function controlsOf(key) {
  return document.querySelectorAll(`[data-key="${CSS.escape(key)}"]`);
}

// Show a value in a key's controls; a slider the user is dragging keeps its place.
function show(key, value) {
  for (const node of controlsOf(key)) {
    if (node.dataset.dragging) continue;
    if (node.type === "checkbox") node.checked = value === true;
    else if (node.tagName === "OUTPUT") node.value = value === null ? "" : String(value);
    else if (document.activeElement !== node || node.type === "range" || node.tagName === "SELECT")
      node.value = value === null || value === undefined ? "" : String(value);
  }
}

async function write(decl, value, row) {
  const error = row.querySelector(".error");
  error.textContent = "";
  try {
    await camera.set({[decl.key]: value});
  } catch (e) {
    error.textContent = message(e);
    show(decl.key, state[decl.key]);  // back to what the camera holds
  }
}

function settingRow(decl) {
  const id = "k-" + decl.key;
  const row = el("div", {className: "row"});
  const reason = el("small", {className: "reason", id: id + "-reason"},
    decl.writable ? "" : decl.reason);
  const error = el("small", {className: "error", id: id + "-error", role: "alert"});
  const described = `${id}-reason ${id}-error`;
  const common = {id, dataset: {key: decl.key}, title: decl.description,
    "aria-describedby": described, disabled: !decl.writable};
  const input = el("span", {className: "input"});
  let labelFor = id;
  if (decl.write === null) {
    input.append(el("output", {id, className: "readout", dataset: {key: decl.key},
      title: decl.description}));
  } else if (decl.type === "bool") {
    const box = el("input", {type: "checkbox", role: "switch", ...common});
    box.addEventListener("change", () => write(decl, box.checked, row));
    input.append(box);
  } else if (decl.type === "choice") {
    const select = el("select", common, ...decl.choices.map((c) => el("option",
      {value: String(c)}, String(c))));
    select.addEventListener("change", () => write(decl, select.value, row));
    input.append(select);
  } else if (decl.type === "int" || decl.type === "float") {
    const step = decl.type === "int" ? "1" : "0.1";
    const range = el("input", {type: "range", min: decl.minimum, max: decl.maximum, step,
      ...common});
    const number = el("input", {type: "number", min: decl.minimum, max: decl.maximum, step,
      ...common, id: id + "-number", "aria-label": label(decl.key) + " value"});
    const parse = (node) => (decl.type === "int" ? parseInt(node.value, 10)
      : parseFloat(node.value));
    range.addEventListener("pointerdown", () => { range.dataset.dragging = "1"; });
    const release = () => { delete range.dataset.dragging; };
    range.addEventListener("pointerup", release);
    range.addEventListener("pointercancel", release);
    range.addEventListener("input", () => { number.value = range.value; });
    range.addEventListener("change", () => { release(); write(decl, parse(range), row); });
    // The number box sends what was typed, even out of range: the camera says why not.
    number.addEventListener("change", () => {
      const value = parse(number);
      if (Number.isNaN(value)) show(decl.key, state[decl.key]);
      else write(decl, value, row);
    });
    input.append(range, number);
  } else {
    const text = el("input", {type: "text", maxLength: decl.max_length || 64, ...common});
    text.addEventListener("change", () => write(decl, text.value, row));
    input.append(text);
  }
  row.append(el("label", {htmlFor: labelFor, title: decl.description}, label(decl.key)),
    input, reason, error);
  return row;
}

function buildSettings() {
  const groups = $("groups");
  const decls = new Map(schema.keys.map((d) => [d.key, d]));
  const placed = new Set();
  const sections = [];
  const other = schema.keys.filter((d) => !NOT_SETTINGS.has(d.key) &&
    !GROUPS.some(([, keys]) => keys.includes(d.key))).map((d) => d.key);
  for (const [title, keys] of [...GROUPS, ["Other", other]]) {
    const rows = keys.filter((k) => decls.has(k) && !placed.has(k)).map((k) => {
      placed.add(k);
      return settingRow(decls.get(k));
    });
    if (rows.length) sections.push(el("div", {className: "group"}, el("h3", {}, title), ...rows));
  }
  groups.replaceChildren(...sections);
  for (const [k, v] of Object.entries(state)) show(k, v);
  const writable = schema.keys.some((d) => d.writable && !NOT_SETTINGS.has(d.key));
  $("settings-note").textContent = writable ? "" : (schema.authenticated
    ? `${schema.role} may change no settings` : "Log in to change settings");
}

function applyChanges(changes) {
  Object.assign(state, changes);
  for (const [k, v] of Object.entries(changes)) show(k, v);
}

// -- live view --------------------------------------------------------------------------

const video = $("live");
const stats = {bytes: 0, at: 0, bitrate: null, fps: null};

function stopSnapshots() {
  if (snapshotTimer) clearTimeout(snapshotTimer);
  snapshotTimer = null;
  $("fallback").hidden = true;
  video.hidden = false;
}

// WebRTC could not connect: refresh snapshots instead, and say so.
function fallBack(reason) {
  $("live-note").textContent = `Live video unavailable (${reason}); showing snapshots ` +
    "refreshed every second.";
  video.hidden = true;
  const img = $("fallback");
  img.hidden = false;
  const refresh = async () => {
    try {
      const blob = await camera.snapshot();
      const old = img.src;
      img.src = URL.createObjectURL(blob);
      if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      $("overlay").textContent = `snapshot ${img.naturalWidth || "?"}x${img.naturalHeight || "?"}` +
        "\nstate: no WebRTC";
    } catch (e) {
      $("live-note").textContent = `Live video unavailable (${reason}); snapshots failed too: ` +
        message(e);
    }
    snapshotTimer = setTimeout(refresh, 1000);
  };
  refresh();
}

function startLive(stream) {
  stopSnapshots();
  $("live-note").textContent = "";
  const started = camera.live(video, {stream}).then((v) => {
    view = v;
    window.rotordreamSession = v.id;  // to switch streams or hang up from outside
    v.pc.addEventListener("connectionstatechange", () => {
      if (v.pc.connectionState === "failed" && view === v) {
        view = null;
        v.close().catch(() => {});
        fallBack("the connection failed");
      }
    });
    return v.pc;
  });
  started.catch((e) => fallBack(message(e)));
  return started;
}

async function updateOverlay() {
  if (!view) return;
  const pc = view.pc;
  let bytes = 0, fps = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      bytes = s.bytesReceived || 0;
      fps = s.framesPerSecond ?? null;
    }
  });
  const now = performance.now();
  if (stats.at && bytes >= stats.bytes) {
    stats.bitrate = (bytes - stats.bytes) * 8 / ((now - stats.at) / 1000);
  }
  stats.bytes = bytes;
  stats.at = now;
  stats.fps = fps;
  const size = video.videoWidth ? `${video.videoWidth}x${video.videoHeight}` : "no picture yet";
  $("overlay").textContent = `${view.stream} ${size}` +
    `\n${fps === null ? "-" : Math.round(fps)} fps, ` +
    `${stats.bitrate === null ? "-" : Math.round(stats.bitrate / 1000)} kbit/s` +
    `\nstate: ${pc.connectionState}`;
}
setInterval(() => updateOverlay().catch(() => {}), 1000);

$("stream").addEventListener("change", async () => {
  const stream = $("stream").value;
  if (!view) return;
  try {
    await view.switch(stream);  // same connection, no renegotiation
    $("live-note").textContent = "";
  } catch (e) {
    $("live-note").textContent = `Could not switch to ${stream}: ${message(e)}`;
  }
});

$("fullscreen").addEventListener("click", () => {
  const viewer = $("viewer");
  if (document.fullscreenElement) document.exitFullscreen();
  else if (viewer.requestFullscreen) viewer.requestFullscreen().catch((e) => {
    $("live-note").textContent = "Fullscreen refused: " + message(e);
  });
});

$("snapshot").addEventListener("click", async () => {
  try {
    const blob = await camera.snapshot();
    const link = el("a", {href: URL.createObjectURL(blob),
      download: `snapshot-${new Date().toISOString().replace(/[:.]/g, "-")}.jpg`});
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (e) {
    $("live-note").textContent = "Snapshot failed: " + message(e);
  }
});

// -- start ------------------------------------------------------------------------------

// (Re)load what the current user may see and do, and watch every key it may read.
async function start() {
  if (watcher) watcher.close();
  watcher = null;
  try {
    schema = await camera._request("GET", "/api/settings/schema");
  } catch (e) {
    schema = null;
    $("settings-note").textContent = "Settings unavailable: " + message(e);
    $("groups").replaceChildren();
    showAccount();
    return;
  }
  const csrf = sessionStorage.getItem(CSRF);
  if (schema.authenticated && !camera._csrf && csrf) {
    // A reload: the HttpOnly cookie still authenticates; writes need its CSRF token.
    camera._csrf = csrf;
    camera._cookieSession = true;
  }
  showAccount();
  const keys = schema.keys.filter((d) => d.type !== "trigger").map((d) => d.key);
  const w = watcher = camera.watch((changes) => applyChanges(changes), {
    keys,
    onError: (e) => { $("settings-note").textContent = message(e); },
    onConnection: (up) => {
      $("settings-note").textContent = up ? "" : "Connection lost; reconnecting…";
    },
  });
  buildSettings();
  try {
    applyChanges(await w.ready);
  } catch (e) {
    if (watcher === w) $("settings-note").textContent = message(e);
  }
}

const initial = new URLSearchParams(location.search).get("stream") === "stream2"
  ? "stream2" : "stream1";
$("stream").value = initial;
window.rotordream = startLive(initial);  // a promise of the peer connection
window.rotordream.catch(() => {});        // shown in the page (snapshot fallback)
window.dashboard = {camera, state, get view() { return view; }, get schema() { return schema; },
  ready: start()};
window.addEventListener("pagehide", () => { if (view) view.close().catch(() => {}); });
