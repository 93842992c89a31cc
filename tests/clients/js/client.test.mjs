// rotordream.js in Node against a running daemon (tests/clients/test_js_node.py starts it).
//
// Environment: ROTORDREAM_URL, ROTORDREAM_USER, ROTORDREAM_PASSWORD (an admin), and
// ROTORDREAM_RESTART_URL: a URL on the pytest side that restarts the daemon on the same
// port and answers once it serves again (for the watch that survives a restart), and
// ROTORDREAM_LIMITED_URL: a second daemon with a small HTTP rate limit.
import {test, describe} from "node:test";
import assert from "node:assert/strict";

import {Camera, RotorDreamError} from "../../../clients/js/rotordream.js";

const URL_ = process.env.ROTORDREAM_URL;
const USER = process.env.ROTORDREAM_USER;
const PASSWORD = process.env.ROTORDREAM_PASSWORD;
const RESTART = process.env.ROTORDREAM_RESTART_URL;
const LIMITED = process.env.ROTORDREAM_LIMITED_URL;
assert.ok(URL_ && USER && PASSWORD, "ROTORDREAM_URL, _USER and _PASSWORD must be set");

const admin = () => new Camera(URL_, {username: USER, password: PASSWORD});

/** Resolve with the first change set `pred` accepts, from the list `seen` or later ones. */
function waitFor(seen, pred, ms = 20000) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const check = () => {
      const hit = seen.find(pred);
      if (hit) return resolve(hit);
      if (Date.now() > deadline) return reject(new Error("not seen: " + JSON.stringify(seen)));
      setTimeout(check, 20);
    };
    check();
  });
}

async function rejectsWith(promise, code) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof RotorDreamError, String(e));
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail("did not fail with " + code);
}

describe("reading the camera", () => {
  test("info is public and lists the streams", async () => {
    const info = await new Camera(URL_).info();
    assert.equal(info.product, "RotorDream");
    assert.ok(info.streams.stream1.url.startsWith("rtsp://"));
  });

  test("status", async () => {
    const status = await admin().status();
    assert.ok(status.uptime > 0);
    assert.ok("recording" in status && "clients" in status);
  });

  test("get, get of several keys, getAll", async () => {
    const camera = admin();
    const all = await camera.getAll();
    assert.equal(all.resolution, "1280x720");
    assert.deepEqual(await camera.get("resolution"), {resolution: "1280x720"});
    const two = await camera.get("brightness", "contrast");
    assert.deepEqual(Object.keys(two).sort(), ["brightness", "contrast"]);
    assert.equal(two.brightness, all.brightness);
    await rejectsWith(camera.get("brightness", "no-such-key"), "NOT_FOUND");
  });

  test("snapshot gives JPEG bytes", async () => {
    const jpeg = await admin().snapshot({quality: 50});
    assert.ok(jpeg instanceof Uint8Array && jpeg.length > 1000);
    assert.deepEqual([...jpeg.subarray(0, 3)], [0xff, 0xd8, 0xff]);
  });

  test("streamUrl pins the transport and carries a token only when there is one", async () => {
    const camera = admin();
    const url = await camera.streamUrl("stream2", {transport: "tcp"});
    assert.match(url, /^rtsp:\/\/127\.0\.0\.1:\d+\/stream2\?tcp$/);
    await camera.login(USER, PASSWORD);
    const withToken = await camera.streamUrl("stream1", {transport: "udp"});
    assert.match(withToken, /\/stream1\?udp&token=[^&]+$/);
    await camera.logout();
    await rejectsWith(camera.streamUrl("stream9"), "NOT_FOUND");
  });
});

describe("changing the camera", () => {
  test("set is one batch and a bad value changes nothing", async () => {
    const camera = admin();
    const before = await camera.get("brightness", "contrast");
    const done = await camera.set({brightness: 61, contrast: 62});
    assert.equal(done.brightness, 61);
    assert.equal(done.contrast, 62);
    const e = await rejectsWith(camera.set({brightness: 10, contrast: 500}), "INVALID_VALUE");
    assert.equal(e.key, "contrast");
    assert.equal(e.status, 400);
    assert.deepEqual(await camera.get("brightness", "contrast"), {brightness: 61, contrast: 62});
    await camera.set(before);
  });

  test("anonymous clients read but may not write", async () => {
    const anonymous = new Camera(URL_);
    assert.ok("brightness" in await anonymous.getAll());
    const e = await rejectsWith(anonymous.set({brightness: 50}), "UNAUTHORIZED");
    assert.equal(e.status, 401);
  });

  test("rotor.set and ptz.move", async () => {
    const camera = admin();
    const rotor = await camera.rotor.set({enabled: true, speed: 1200, direction: "ccw"});
    assert.deepEqual(rotor, {"rotor-enabled": true, "rotor-speed": 1200,
      "rotor-direction": "ccw"});
    await camera.rotor.set({enabled: false});
    assert.equal((await camera.get("rotor-enabled"))["rotor-enabled"], false);
    const moved = await camera.ptz.move(12.5, -4);
    assert.deepEqual(moved, {pan: 12.5, tilt: -4});
    await rejectsWith(camera.ptz.move(500, 0), "INVALID_VALUE");
  });

  test("ptz.continuous, stop, relative, home, presets and goto", async () => {
    const camera = admin();
    const watcher = camera.watch(() => {}, {keys: ["pan-position", "tilt-position", "motor-state"]});
    await watcher.ready;
    await camera.ptz.continuous(0.5, 0, {timeout: 5});
    await waitFor([watcher.values], (v) => v["motor-state"] === "moving");
    await camera.ptz.stop();
    await waitFor([watcher.values], (v) => v["motor-state"] === "idle");
    const status = await camera.ptz.status();
    assert.ok(status.limits.pan_max > 0 && Array.isArray(status.presets), JSON.stringify(status));
    // A preset made at a known position, then a trip away and back to it.
    await camera.ptz.move(20, 10);
    await waitFor([watcher.values], (v) => v["pan-position"] === 20 && v["tilt-position"] === 10 &&
      v["motor-state"] === "idle");
    const token = await camera.ptz.savePreset("client-test");
    const listed = (await camera.ptz.presets()).find((p) => p.token === token);
    assert.deepEqual([listed.name, listed.pan, listed.tilt], ["client-test", 20, 10]);
    await camera.ptz.relative(-5, 0);
    await waitFor([watcher.values], (v) => v["pan-position"] === 15 && v["motor-state"] === "idle");
    await camera.ptz.home();
    await waitFor([watcher.values], (v) => v["pan-position"] === 0 && v["tilt-position"] === 0);
    await camera.ptz.goto(token);
    await waitFor([watcher.values], (v) => v["pan-position"] === 20 && v["tilt-position"] === 10);
    watcher.close();
    await camera.ptz.removePreset(token);
    assert.equal((await camera.ptz.presets()).find((p) => p.token === token), undefined);
    await rejectsWith(camera.ptz.goto(token), "NOT_FOUND");
    await rejectsWith(camera.ptz.continuous(3, 0), "INVALID_VALUE");
    await rejectsWith(new Camera(URL_).ptz.stop(), "UNAUTHORIZED");
  });
});

describe("recording", () => {
  test("start, pause, resume, stop, list all pages, download, delete", async () => {
    const camera = admin();
    const ids = [];
    for (const name of ["js-a", "js-b", "js-c"]) {
      const started = await camera.recording.start({name, duration: 30});
      assert.equal(started.recording, true, JSON.stringify(started));
      if (name === "js-a") {
        await camera.recording.pause();
        assert.equal((await camera.recording.status()).paused, true);
        await camera.recording.resume();
      }
      await waitForBytes(camera);
      const stopped = await camera.recording.stop();
      assert.equal(stopped.recording, false);
      ids.push(started.id);
    }
    assert.equal((await camera.recording.status()).recording, false);
    const everything = await camera.recordings.list();
    const paged = await camera.recordings.list({since: new Date(Date.now() - 3600e3)});
    for (const id of ids) assert.ok(paged.some((r) => r.id === id), id);
    assert.ok(everything.length >= 3);
    assert.equal((await camera.recordings.list({limit: 2})).length, 2);
    // Pages of one: every recording still comes, each once.
    const one = await listPagesOfOne(camera);
    assert.deepEqual(one.map((r) => r.id), everything.map((r) => r.id));
    const entry = everything.find((r) => r.id === ids[0]);
    const mp4 = await camera.recordings.download(ids[0]);
    assert.equal(mp4.length, entry.size);
    assert.equal(new TextDecoder().decode(mp4.subarray(4, 8)), "ftyp");
    for (const id of ids) await camera.recordings.delete(id);
    await rejectsWith(camera.recordings.download(ids[0]), "NOT_FOUND");
    await rejectsWith(camera.recordings.delete(ids[0]), "NOT_FOUND");
  });
});

/** list() with a page size of one, through its paging loop. */
async function listPagesOfOne(camera) {
  const calls = [];
  const counting = new Camera(URL_, {username: USER, password: PASSWORD,
    fetch: (url, init) => { calls.push(url); return fetch(url, init); }});
  const all = [];
  for (let offset = 0; ; offset += 1) {
    const page = await counting._request("GET", "/api/recordings", {query: {offset, limit: 1}});
    all.push(...page.recordings);
    if (offset + 1 >= page.total) break;
  }
  assert.ok(calls.length >= 3);
  return all;
}

async function waitForBytes(camera) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    const s = await camera.recording.status();
    if (s.bytes > 0 && s.duration >= 1) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail("the recording did not grow");
}

describe("users and sessions", () => {
  const name = "js-user-" + process.pid;

  test("users.add, list, setRole, setPassword, delete", async () => {
    const camera = admin();
    const added = await camera.users.add(name, "first-pass-1", "viewer");
    assert.equal(added.role, "viewer");
    assert.ok((await camera.users.list()).some((u) => u.username === name));
    assert.equal((await camera.users.setRole(name, "operator")).role, "operator");
    await camera.users.setPassword(name, "second-pass-2");
    const user = new Camera(URL_, {username: name, password: "second-pass-2"});
    await user.set({brightness: (await user.get("brightness")).brightness});
    await rejectsWith(new Camera(URL_, {username: name, password: "first-pass-1"}).status(),
      "UNAUTHORIZED");
    // A user changes its own password with the current one.
    await user.users.setPassword(name, "third-pass-3", {current: "second-pass-2"});
    await rejectsWith(user.users.list(), "UNAUTHORIZED");
    await rejectsWith(new Camera(URL_, {username: name, password: "third-pass-3"}).users.list(),
      "FORBIDDEN");
    await rejectsWith(camera.users.add(name, "x-pass-1234", "viewer"), "CONFLICT");
    await camera.users.delete(name);
    assert.ok(!(await camera.users.list()).some((u) => u.username === name));
  });

  test("token from the constructor, login and logout", async () => {
    const camera = new Camera(URL_);
    const who = await camera.login(USER, PASSWORD);
    assert.equal(who.role, "admin");
    const token = camera._token;
    const byToken = new Camera(URL_, {token});
    assert.ok(Array.isArray(await byToken.users.list()));
    await camera.logout();
    await rejectsWith(byToken.users.list(), "UNAUTHORIZED");
    const kept = new Camera(URL_, {username: USER, password: PASSWORD});
    await rejectsWith(kept.login(USER, "wrong"), "UNAUTHORIZED");
    assert.ok(Array.isArray(await kept.users.list()), "a failed login keeps the credentials");
  });

  test("errors carry status and the 401 carries no browser challenge", async () => {
    const response = await fetch(URL_ + "/api/users",
      {headers: {"X-Requested-With": "XMLHttpRequest"}});
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), null);
    const e = await rejectsWith(new Camera(URL_, {username: USER, password: "nope"}).status(),
      "UNAUTHORIZED");
    assert.equal(e.status, 401);
  });
});

describe("watch", () => {
  test("reports changes from other clients (global WebSocket)", async () => {
    await watchSaturation(admin());
  });

  test("reports changes through an injected WebSocket class", async () => {
    const saved = globalThis.WebSocket;
    let used = 0;
    class Counted extends saved {
      constructor(...args) {
        super(...args);
        used += 1;
      }
    }
    // Nothing to fall back on: the client must use the class it was given.
    globalThis.WebSocket = undefined;
    try {
      await watchSaturation(new Camera(URL_, {username: USER, password: PASSWORD,
        WebSocket: Counted}));
    } finally {
      globalThis.WebSocket = saved;
    }
    assert.ok(used >= 1, "the injected WebSocket was not used");
  });

  test("watching every key; a bad token is reported", async () => {
    const seen = [];
    const w = admin().watch((c) => seen.push(c));
    const values = await w.ready;
    assert.ok("brightness" in values && "pan-position" in values);
    await admin().set({sharpness: values.sharpness === 70 ? 71 : 70});
    await waitFor(seen, (c) => "sharpness" in c);
    w.close();
    await admin().set({sharpness: values.sharpness});
    const errors = [];
    const bad = new Camera(URL_, {token: "not-a-token"}).watch(() => {},
      {keys: ["brightness"], onError: (e) => errors.push(e)});
    await assert.rejects(bad.ready, (e) => e.code === "UNAUTHORIZED");
    bad.close();
    assert.deepEqual(errors.map((e) => e.code), ["UNAUTHORIZED"]);
    const unknown = admin().watch(() => {}, {keys: ["no-such-key"]});
    const e = await unknown.ready.then(() => null, (err) => err);
    assert.ok(e instanceof RotorDreamError && e.key === "no-such-key", String(e));
  });

  test("survives a daemon restart and reports what changed meanwhile", {skip: !RESTART},
    async () => {
      const camera = admin();
      const seen = [];
      const connections = [];
      const w = camera.watch((c, how) => seen.push({...c, resync: how.resync}),
        {keys: ["gain", "red-gain"], minDelay: 100, maxDelay: 1000,
          onConnection: (up) => connections.push(up)});
      const first = await w.ready;
      // The pytest side restarts the daemon and sets gain while no watcher is connected.
      const wantedGain = first.gain === 77 ? 78 : 77;
      const reply = await fetch(RESTART + "?gain=" + wantedGain);
      assert.equal(reply.status, 200, await reply.text());
      const resynced = await waitFor(seen, (c) => c.resync && c.gain === wantedGain);
      assert.ok(!("red-gain" in resynced), "unchanged keys are not reported");
      assert.deepEqual(connections.slice(0, 3), [true, false, true]);
      // And changes after the reconnect arrive live.
      await admin().set({"red-gain": first["red-gain"] === 20 ? 21 : 20});
      await waitFor(seen, (c) => !c.resync && "red-gain" in c);
      w.close();
    });
});

/** Watch saturation with ``camera`` while another client changes it and brightness. */
async function watchSaturation(camera) {
  const seen = [];
  const w = camera.watch((changes) => seen.push(changes), {keys: ["saturation"]});
  const first = await w.ready;
  const start = first.saturation;
  const next = start === 33 ? 34 : 33;
  await admin().set({saturation: next, brightness: 40});
  const got = await waitFor(seen, (c) => "saturation" in c);
  assert.equal(got.saturation, next);
  assert.ok(!seen.some((c) => "brightness" in c), "unwatched keys are not reported");
  w.close();
  await admin().set({saturation: start});
}

describe("the error envelope", () => {
  test("a 429 carries retryAfter and status", {skip: !LIMITED}, async () => {
    // A daemon allowing 3 requests a minute: the fourth is refused.
    const camera = new Camera(LIMITED);
    for (let i = 0; i < 3; i += 1) await camera.info();
    const e = await rejectsWith(camera.info(), "RATE_LIMITED");
    assert.equal(e.status, 429);
    assert.ok(e.retryAfter > 0 && e.retryAfter <= 60, String(e.retryAfter));
    assert.equal(e.body.limit, 3);
  });

  test("an unreachable camera is an UNREACHABLE error", async () => {
    await rejectsWith(new Camera("http://127.0.0.1:1").info(), "UNREACHABLE");
  });

  test("the daemon serves this very file at /client/rotordream.js", async () => {
    const {readFile} = await import("node:fs/promises");
    const served = await fetch(URL_ + "/client/rotordream.js");
    assert.match(served.headers.get("content-type"), /javascript/);
    const here = await readFile(new URL("../../../clients/js/rotordream.js", import.meta.url),
      "utf8");
    assert.equal(await served.text(), here);
  });
});
