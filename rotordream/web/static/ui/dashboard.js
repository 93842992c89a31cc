// The camera's dashboard (served at /): live view over WebRTC; settings generated from
// GET /api/settings/schema and kept live over the WebSocket; recording and recordings;
// motors; status and events; users. Everything goes through rotordream.js.
import { Camera } from "/client/rotordream.js";

const $ = (id) => document.getElementById(id);
const camera = new Camera();
const state = {};          // the last values the camera reported
let schema = null;         // GET /api/settings/schema for the current user
let watcher = null;        // the camera.watch() of the current user
let view = null;           // the live view (camera.live), null while on snapshots
let snapshotTimer = null;
let settingsNote = "";     // what the settings say about the user's permissions
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
  "motor-state", "motion"]);

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
    await hangUp();
    await camera.login(form.elements.username.value, form.elements.password.value);
    sessionStorage.setItem(CSRF, camera.csrfToken);
    form.elements.password.value = "";
    form.hidden = true;
    await start();
    $("logout").focus();
  } catch (e) {
    $("login-error").textContent = message(e);
  }
  reconnect();
});
$("logout").addEventListener("click", async () => {
  await hangUp();
  try {
    await camera.logout();
  } catch (e) {
    // The session may be gone already (expired, revoked): the page is anonymous either way.
  }
  sessionStorage.removeItem(CSRF);
  await start();
  reconnect();
  $("show-login").focus();
});

// A live view belongs to the user who opened it (only they may switch or end it), so
// logging in or out ends it first and opens a new one afterwards as the new user.
async function hangUp() {
  await window.rotordream.catch(() => {});  // one still connecting finishes first
  const v = view;
  view = null;
  if (v) await v.close().catch(() => {});
}

function reconnect() {
  if (!view && snapshotTimer === null) {
    window.rotordream = startLive($("stream").value);
    window.rotordream.catch(() => {});
  }
}

// -- settings ---------------------------------------------------------------------------

const LABELS = {"red-gain": "Red gain", "blue-gain": "Blue gain", "fps": "Frame rate",
  "noise-supression": "Noise suppression", "jpeg-quality": "JPEG quality"};

function label(key) {
  return LABELS[key] || key.charAt(0).toUpperCase() + key.slice(1).replace(/-/g, " ");
}

function controlsOf(key) {
  return document.querySelectorAll(`[data-key="${CSS.escape(key)}"]`);
}

const writing = new Map();  // key -> the value still to send while a write is under way

// Show a value in a key's controls; a slider the user is dragging keeps its place, and
// so do the controls of a key whose newer value is still being written: the camera's echo
// of an earlier write would put a focused slider back, and the next arrow key press would
// step from there (seen in Firefox). ``force``: show it anyway (a refused write).
function show(key, value, force = false) {
  if (writing.has(key) && !force) return;
  for (const node of controlsOf(key)) {
    if (node.dataset.dragging) continue;
    if (node.type === "checkbox") node.checked = value === true;
    else if (node.tagName === "OUTPUT") node.value = value === null ? "" : String(value);
    else if (document.activeElement !== node || node.type === "range" || node.tagName === "SELECT")
      node.value = value === null || value === undefined ? "" : String(value);
  }
}

// One write per key at a time, the latest value last: parallel requests could arrive out
// of order and leave an older value behind (three quick arrow key presses, say).
async function write(decl, value, row) {
  const error = row.querySelector(".error");
  error.textContent = "";
  const busy = writing.has(decl.key);
  writing.set(decl.key, value);
  if (busy) return;
  while (writing.has(decl.key)) {
    const next = writing.get(decl.key);
    try {
      await camera.set({[decl.key]: next});
    } catch (e) {
      error.textContent = message(e);
      show(decl.key, state[decl.key], true);  // back to what the camera holds
    }
    if (writing.get(decl.key) === next) writing.delete(decl.key);
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
  row.append(el("label", {htmlFor: id, title: decl.description}, label(decl.key)),
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
  settingsNote = writable ? "" : (schema.authenticated
    ? `${schema.role} may change no settings` : "Log in to change settings");
  $("settings-note").textContent = settingsNote;
}

function applyChanges(changes) {
  noteChanges(changes);
  Object.assign(state, changes);
  for (const [k, v] of Object.entries(changes)) show(k, v);
  if ("motor-state" in changes) showMotorState();
  if ("record" in changes && schema) {
    refreshRecorder().then(listRecordings).catch(() => {});
  }
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
  started.catch((e) => fallBack(noH264() ? "this browser cannot decode H.264 over WebRTC"
    : message(e)));
  return started;
}

// The camera sends H.264 only. A browser whose WebRTC lacks it (Firefox without its
// OpenH264 plugin) rejects the video in its answer, and the camera then refuses that
// answer with an ICE error that names no cause: asked only after a failure, as Firefox
// may list the plugin's codec only once the plugin has loaded.
function noH264() {
  const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities &&
    RTCRtpReceiver.getCapabilities("video");
  return !!caps && !caps.codecs.some((c) => c.mimeType.toLowerCase() === "video/h264");
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

// -- recording and recordings ---------------------------------------------------------------

function can(permission) {
  return !!schema && schema.permissions.includes(permission);
}

function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function seconds(s) {
  s = Math.round(s || 0);
  const mmss = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mmss.padStart(5, "0")}` : mmss;
}

const recordings = {offset: 0, limit: 10, total: 0};
let recorder = null;  // the last /api/recording/status

async function refreshRecorder() {
  if (!can("recordings.read")) return;
  recorder = await camera.recording.status();
  const r = recorder;
  const what = r.state === "idle" ? "Not recording" : r.paused ? "Paused" : "Recording";
  $("rec-status").textContent = `${what}` + (r.state === "idle" ? "" :
    ` ${r.name ? "“" + r.name + "” " : ""}${seconds(r.duration)}, ${bytes(r.bytes)}`) +
    ` · free space ${bytes(r.free)}`;
  $("rec-status").dataset.state = r.state;
  const control = can("recording.control");
  $("rec-start").disabled = !control || r.state !== "idle";
  $("rec-stop").disabled = !control || r.state === "idle";
  $("rec-pause").disabled = !control || r.state === "idle";
  $("rec-pause").textContent = r.paused ? "Resume" : "Pause";
}

function dayStart(value, end) {
  if (!value) return undefined;
  const d = new Date(value + "T00:00:00");
  if (end) d.setDate(d.getDate() + 1);
  return d.getTime() / 1000;
}

async function listRecordings() {
  if (!can("recordings.read")) return;
  const data = await camera.request("GET", "/api/recordings", {query: {
    offset: recordings.offset, limit: recordings.limit,
    since: dayStart($("rec-since").value), until: dayStart($("rec-until").value, true)}});
  recordings.total = data.total;
  const rows = data.recordings.map((r) => {
    const href = "/api/recordings/" + encodeURIComponent(r.id);
    const play = el("button", {type: "button", "aria-label": `Play ${r.name || r.id}`}, "Play");
    play.addEventListener("click", () => {
      const player = $("playback");
      player.hidden = false;
      player.src = href;  // the fMP4 over HTTP: the browser seeks with Range requests
      player.dataset.id = r.id;
      player.play().catch(() => {});
    });
    const actions = [play, el("a", {href, download: `${r.id}.mp4`}, "Download")];
    if (can("recordings.delete")) {
      const del = el("button", {type: "button", "aria-label": `Delete ${r.name || r.id}`},
        "Delete");
      del.addEventListener("click", async () => {
        if (!confirm(`Delete recording ${r.name || r.id}?`)) return;
        try {
          await camera.recordings.delete(r.id);
          await listRecordings();
        } catch (e) {
          $("rec-error").textContent = message(e);
        }
      });
      actions.push(del);
    }
    return el("tr", {dataset: {id: r.id}},
      el("td", {}, r.start ? new Date(r.start).toLocaleString() : ""),
      el("td", {}, (r.name || "") + (r.recording ? " (recording)" : "")),
      el("td", {}, seconds(r.duration)), el("td", {}, bytes(r.size)), el("td", {}, ...actions));
  });
  $("rec-list").tBodies[0].replaceChildren(...rows);
  const last = Math.min(recordings.offset + recordings.limit, data.total);
  $("rec-page").textContent = data.total ? `${recordings.offset + 1}–${last} of ${data.total}`
    : "no recordings";
  $("rec-prev").disabled = recordings.offset === 0;
  $("rec-next").disabled = last >= data.total;
  const used = data.recordings.reduce((sum, r) => sum + (r.size || 0), 0);
  $("rec-storage").textContent = recorder ? `Free space: ${bytes(recorder.free)}` +
    (data.recordings.length ? ` · this page: ${bytes(used)}` : "") : "";
}

function recordingAction(fn) {
  return async () => {
    $("rec-error").textContent = "";
    try {
      await fn();
    } catch (e) {
      $("rec-error").textContent = message(e);
    }
    await refreshRecorder().catch(() => {});
    await listRecordings().catch(() => {});
  };
}
$("rec-start").addEventListener("click", recordingAction(() => camera.recording.start()));
$("rec-stop").addEventListener("click", recordingAction(() => camera.recording.stop()));
$("rec-pause").addEventListener("click", recordingAction(() => (recorder && recorder.paused
  ? camera.recording.resume() : camera.recording.pause())));
$("rec-filter").addEventListener("submit", (event) => {
  event.preventDefault();
  recordings.offset = 0;
  listRecordings().catch((e) => { $("rec-error").textContent = message(e); });
});
$("rec-prev").addEventListener("click", () => {
  recordings.offset = Math.max(0, recordings.offset - recordings.limit);
  listRecordings().catch((e) => { $("rec-error").textContent = message(e); });
});
$("rec-next").addEventListener("click", () => {
  recordings.offset += recordings.limit;
  listRecordings().catch((e) => { $("rec-error").textContent = message(e); });
});
setInterval(() => {
  if (!$("recording-section").hidden) refreshRecorder().catch(() => {});
}, 1000);

function buildRecording() {
  const section = $("recording-section");
  section.hidden = !can("recordings.read");
  if (section.hidden) return;
  $("rec-reason").textContent = can("recording.control") ? ""
    : schema.authenticated ? `${schema.role} may not record` : "Log in to record";
  refreshRecorder().then(listRecordings).catch((e) => { $("rec-error").textContent = message(e); });
}

// -- motors -------------------------------------------------------------------------------

const MOTOR_KEYS = ["rotor-enabled", "rotor-speed", "rotor-direction", "pan", "tilt"];
let held = null;  // {x, y, timer, button} while a pad direction is held

function motorError(e) {
  $("motor-error").textContent = e ? message(e) : "";
}

// Pan/tilt over REST (/api/ptz): the session cookie and CSRF token authorize it.
const ptz = (method, path, body) => camera.request(method, "/api/ptz" + path, {body});

// Move at a velocity while held: a short timeout renewed every half second, so the axes
// stop by themselves even if this page goes away without saying so.
function hold(x, y, button) {
  if (held && held.x === x && held.y === y) return;
  release();
  if (!can("motor.control")) return;
  motorError(null);
  const move = () => ptz("POST", "/continuous", {pan_velocity: x, tilt_velocity: y, timeout: 1})
    .catch(motorError);
  held = {x, y, button, timer: setInterval(move, 500)};
  if (button) button.classList.add("held");
  move();
}

function release() {
  if (!held) return;
  clearInterval(held.timer);
  if (held.button) held.button.classList.remove("held");
  held = null;
  ptz("POST", "/stop").catch(motorError);
}

const KEYS_TO_DIR = {ArrowUp: "0,1", ArrowDown: "0,-1", ArrowLeft: "-1,0", ArrowRight: "1,0"};
const pad = $("pad");
for (const button of pad.querySelectorAll("[data-dir]")) {
  const [x, y] = button.dataset.dir.split(",").map(Number);
  button.addEventListener("pointerdown", (event) => {
    try {
      button.setPointerCapture(event.pointerId);  // the release comes here even off the button
    } catch (e) {
      // Not an active pointer (a synthetic event): pointerup on the button still releases.
    }
    hold(x, y, button);
  });
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  button.addEventListener("lostpointercapture", release);
  // Space or Enter on a focused direction button moves while the key is down.
  button.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) {
      event.preventDefault();
      hold(x, y, button);
    }
  });
  button.addEventListener("keyup", (event) => {
    if (event.key === " " || event.key === "Enter") release();
  });
}
pad.addEventListener("keydown", (event) => {
  const dir = KEYS_TO_DIR[event.key];
  if (!dir) return;
  event.preventDefault();
  if (event.repeat) return;
  const button = pad.querySelector(`[data-dir="${dir}"]`);
  const [x, y] = dir.split(",").map(Number);
  hold(x, y, button);
});
pad.addEventListener("keyup", (event) => { if (KEYS_TO_DIR[event.key]) release(); });
pad.addEventListener("focusout", (event) => {
  if (!pad.contains(event.relatedTarget)) release();
});
window.addEventListener("blur", release);
document.addEventListener("visibilitychange", () => { if (document.hidden) release(); });
$("home").addEventListener("click", () => {
  motorError(null);
  ptz("POST", "/home").catch(motorError);
});

async function listPresets() {
  const {presets} = await ptz("GET", "/presets");
  $("presets").replaceChildren(...presets.map((p) => {
    const go = el("button", {type: "button", "aria-label": `Go to ${p.name}`}, "Go");
    const path = "/presets/" + encodeURIComponent(p.token);
    go.addEventListener("click", () => ptz("POST", path + "/goto").catch(motorError));
    const del = el("button", {type: "button", "aria-label": `Delete ${p.name}`}, "Delete");
    del.addEventListener("click", async () => {
      try {
        await ptz("DELETE", path);
        await listPresets();
      } catch (e) {
        motorError(e);
      }
    });
    const where = p.pan == null ? "" : ` (pan ${Number(p.pan).toFixed(1)}°, ` +
      `tilt ${Number(p.tilt).toFixed(1)}°)`;
    go.disabled = del.disabled = !can("motor.control");
    return el("li", {}, `${p.name}${where} `, go, " ", del);
  }));
}

$("preset-save").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = event.target.elements.name.value;
  try {
    await ptz("POST", "/presets", {name});
    event.target.elements.name.value = "";
    await listPresets();
  } catch (e) {
    motorError(e);
  }
});

function buildMotors() {
  const section = $("motors-section");
  const decls = new Map(schema.keys.map((d) => [d.key, d]));
  section.hidden = !decls.has("pan");
  if (section.hidden) return;
  $("motor-settings").replaceChildren(...MOTOR_KEYS.filter((k) => decls.has(k))
    .map((k) => settingRow(decls.get(k))));
  const control = can("motor.control");
  for (const node of pad.querySelectorAll("button")) node.disabled = !control;
  for (const node of $("preset-save").elements) node.disabled = !control;
  $("pad-reason").textContent = control ? "" : decls.get("pan").reason;
  if (can("status.read")) listPresets().catch(motorError);
}

function showMotorState() {
  const fault = state["motor-state"] === "fault";
  $("motor-state").classList.toggle("fault", fault);
}

// -- status and events ----------------------------------------------------------------------

const ROLES = ["admin", "operator", "viewer", "guest"];
const events = [];

// One line in the event list, newest first (errors, motor faults, recording start/stop).
function logEvent(kind, text) {
  events.unshift({at: new Date(), kind, text});
  events.length = Math.min(events.length, 50);
  $("events").replaceChildren(...events.map((e) => el("li", {className: e.kind === "error"
    ? "bad" : "", dataset: {kind: e.kind}}, `${e.at.toLocaleTimeString()} ${e.kind}: ${e.text}`)));
}

function noteChanges(changes) {
  // Only changes of a value already known: not the first reading.
  if ("record" in changes && "record" in state && state.record !== changes.record) {
    const r = changes.record;
    logEvent("recording", r === true ? "started or resumed" : r === "paused" ? "paused" : "stopped");
  }
  if (changes["motor-state"] === "fault" && state["motor-state"] !== "fault") logEvent("error", "motor fault");
  if ("motion" in changes && "motion" in state && state.motion !== changes.motion) {
    logEvent("motion", changes.motion ? "started" : "ended");
  }
}

async function refreshStatus() {
  if (!can("status.read")) return;
  const [st, streams] = await Promise.all([camera.status(),
    camera.request("GET", "/api/streams")]);
  const rows = [["Uptime", seconds(st.uptime)], ["CPU", `${Math.round(st.cpu_percent || 0)} %`],
    ["Memory", bytes(st.memory.rss)],
    ["Disk", `${bytes(st.disk.used)} used, ${bytes(st.disk.free)} free`],
    ["Clients", `RTSP ${st.clients.rtsp}, WebRTC ${st.clients.webrtc}, ` +
      `WebSocket ${st.clients.websocket}`]];
  $("status-list").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k),
    el("dd", {dataset: {status: k.toLowerCase()}}, v)]));
  const counters = (st.camera && st.camera.streams) || {};
  $("stream-stats").tBodies[0].replaceChildren(...streams.streams.map((s) => {
    const c = counters[s.name] || {};
    return el("tr", {dataset: {stream: s.name}}, el("td", {}, s.name),
      el("td", {}, `${c.width || s.width}x${c.height || s.height}`),
      el("td", {}, String(c.fps || s.fps)),
      el("td", {}, `${Math.round((s.measured_bitrate || 0) / 1000)} kbit/s`),
      el("td", {}, c.encode_ms_avg == null ? "-" : `${c.encode_ms_avg} ms`),
      el("td", {}, `RTSP ${s.clients}, WebRTC ${s.webrtc_clients}`));
  }));
}
setInterval(() => {
  if (!$("status-section").hidden) refreshStatus().catch(() => {});
}, 2000);

function buildStatus() {
  $("status-section").hidden = !can("status.read");
  refreshStatus().catch((e) => logEvent("error", message(e)));
}

// -- users ------------------------------------------------------------------------------------

function usersError(e) {
  $("users-error").textContent = e ? message(e) : "";
}

async function listUsers() {
  const users = await camera.users.list();
  $("users").tBodies[0].replaceChildren(...users.map((u) => {
    const role = el("select", {"aria-label": `Role of ${u.username}`},
      ...ROLES.map((r) => el("option", {value: r, selected: r === u.role}, r)));
    role.addEventListener("change", () => camera.users.setRole(u.username, role.value)
      .then(() => usersError(null), (e) => { usersError(e); listUsers().catch(usersError); }));
    const password = el("input", {type: "password", autocomplete: "new-password",
      minLength: 8, "aria-label": `New password for ${u.username}`});
    const reset = el("button", {type: "button"}, "Set password");
    reset.addEventListener("click", () => camera.users.setPassword(u.username, password.value)
      .then(() => { password.value = ""; usersError(null); }, usersError));
    const del = el("button", {type: "button", "aria-label": `Delete ${u.username}`}, "Delete");
    del.addEventListener("click", async () => {
      if (!confirm(`Delete user ${u.username}?`)) return;
      try {
        await camera.users.delete(u.username);
        usersError(null);
        await listUsers();
      } catch (e) {
        usersError(e);
      }
    });
    return el("tr", {dataset: {user: u.username}}, el("td", {}, u.username), el("td", {}, role),
      el("td", {}, password, " ", reset), el("td", {}, del));
  }));
}

$("user-add").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = e.target.elements;
  try {
    await camera.users.add(f.username.value, f.password.value, f.role.value);
    f.username.value = f.password.value = "";
    usersError(null);
    await listUsers();
  } catch (err) {
    usersError(err);
  }
});

function buildUsers() {
  $("users-section").hidden = !can("users.admin");
  if (!$("users-section").hidden) listUsers().catch(usersError);
}

// -- start ------------------------------------------------------------------------------

// (Re)load what the current user may see and do, and watch every key it may read.
async function start() {
  if (watcher) watcher.close();
  watcher = null;
  try {
    schema = await camera.request("GET", "/api/settings/schema");
  } catch (e) {
    schema = null;
    $("settings-note").textContent = "Settings unavailable: " + message(e);
    $("groups").replaceChildren();
    showAccount();
    return;
  }
  const csrf = sessionStorage.getItem(CSRF);
  if (schema.authenticated && !camera.csrfToken && csrf) {
    // A reload: the HttpOnly cookie still authenticates; writes need its CSRF token.
    camera.resumeSession(csrf);
  }
  showAccount();
  const keys = schema.keys.filter((d) => d.type !== "trigger").map((d) => d.key);
  const w = watcher = camera.watch((changes) => applyChanges(changes), {
    keys,
    // The camera's own events (recorder and motor errors) come as errors too.
    onError: (e) => logEvent("error", message(e)),
    onConnection: (up) => {
      $("settings-note").textContent = up ? settingsNote : "Connection lost; reconnecting…";
    },
  });
  buildSettings();
  buildRecording();
  buildMotors();
  buildStatus();
  buildUsers();
  try {
    applyChanges(await w.ready);
  } catch (e) {
    if (watcher === w) $("settings-note").textContent = message(e);
  }
}

// auto: stream1 while the viewer's link carries it, stream2 when it does not (the camera
// switches at keyframes); ?stream= picks one.
const asked = new URLSearchParams(location.search).get("stream");
const initial = ["stream1", "stream2", "auto"].includes(asked) ? asked : "auto";
$("stream").value = initial;
window.rotordream = startLive(initial);  // a promise of the peer connection
window.rotordream.catch(() => {});        // shown in the page (snapshot fallback)
window.dashboard = {camera, state, get view() { return view; }, get schema() { return schema; },
  get recorder() { return recorder; }, ready: start()};
window.addEventListener("pagehide", () => { if (view) view.close().catch(() => {}); });
