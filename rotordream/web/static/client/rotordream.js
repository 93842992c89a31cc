/**
 * rotordream.js: the RotorDream camera client for browsers and Node 20+.
 *
 * One dependency-free ES module. REST goes through `fetch`, state changes come
 * over the control WebSocket (`/api/v1`), and `live()` shows the camera in a
 * <video> over WebRTC.
 *
 *     import { Camera } from "/client/rotordream.js";
 *     const camera = new Camera();                      // this page's camera
 *     const camera = new Camera("http://cam:8080", {username: "admin", password: "..."});
 *     await camera.set({brightness: 60});
 *     const view = await camera.live(document.querySelector("video"));
 *
 * Every request carries `X-Requested-With: XMLHttpRequest`, so a 401 never
 * makes a browser show its own password dialog over the page.
 *
 * @module rotordream
 */

const STATUS_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMITED",
  500: "INTERNAL", 503: "CAMERA_NOT_CONNECTED", 507: "INSUFFICIENT_STORAGE"};

/** True in a page (a DOM and cookies), false in Node. */
const IN_BROWSER = typeof window !== "undefined" && typeof document !== "undefined";

/**
 * An error the camera answered with (the REST error envelope, a WebSocket error
 * message or an ONVIF fault), or a failure to reach it.
 */
export class RotorDreamError extends Error {
  /**
   * @param {string} message the human message
   * @param {{code?: string, key?: (string|null), retryAfter?: (number|null),
   *          status?: (number|null), allowed?: *, body?: *}} [details]
   */
  constructor(message, details = {}) {
    super(message);
    this.name = "RotorDreamError";
    /** @type {string} machine code such as INVALID_VALUE, UNAUTHORIZED, RATE_LIMITED */
    this.code = details.code || "INTERNAL";
    /** @type {string|null} the setting or field at fault */
    this.key = details.key ?? null;
    /** @type {number|null} seconds to wait before trying again (429) */
    this.retryAfter = details.retryAfter ?? null;
    /** @type {number|null} HTTP status, null for WebSocket errors */
    this.status = details.status ?? null;
    /** @type {*} the allowed values or range, when the camera names them */
    this.allowed = details.allowed ?? null;
    /** @type {*} the whole error body */
    this.body = details.body ?? null;
  }

  /**
   * The error for an error envelope (or WebSocket error message).
   * @param {Object} body
   * @param {number|null} status
   * @param {string|null} [retryHeader] the Retry-After header
   */
  static fromEnvelope(body, status, retryHeader = null) {
    const retry = body.retry_after ?? (retryHeader != null ? Number(retryHeader) : null);
    return new RotorDreamError(body.error || "HTTP " + status, {
      code: body.code || STATUS_CODES[status] || "INTERNAL", key: body.key ?? null,
      retryAfter: retry, status, allowed: body.allowed ?? null, body});
  }
}

/** @param {string} text @returns {string} base64 of its UTF-8 bytes */
function base64(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** @param {*} a @param {*} b @returns {boolean} same JSON value */
function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A change callback of {@link Camera#watch}.
 * @callback WatchCallback
 * @param {Object<string, *>} changes keys and their new values
 * @param {{resync: boolean}} how resync: found by re-reading after a reconnect
 */

/**
 * What {@link Camera#watch} returns.
 * @typedef {Object} Watch
 * @property {Promise<Object<string, *>>} ready the first reading of the watched keys
 * @property {Object<string, *>} values the latest value of every watched key
 * @property {function(): void} close stop watching
 */

/**
 * What {@link Camera#live} returns.
 * @typedef {Object} LiveView
 * @property {string} id the camera's WebRTC session id
 * @property {string} stream the stream shown
 * @property {RTCPeerConnection} pc the peer connection
 * @property {function(string): Promise<Object>} switch show another stream (no renegotiation)
 * @property {function(): Promise<void>} close hang up
 */

/** A RotorDream camera. */
export class Camera {
  /**
   * @param {string} [url] the camera's base URL (default: the page's origin)
   * @param {Object} [options]
   * @param {string} [options.username] Basic credentials sent with every request
   * @param {string} [options.password]
   * @param {string} [options.token] a bearer token (from login or the camera's tokens)
   * @param {typeof WebSocket} [options.WebSocket] a WebSocket class (Node 20 without
   *   --experimental-websocket: e.g. the `ws` package's)
   * @param {typeof fetch} [options.fetch] a fetch function
   */
  constructor(url, options = {}) {
    if (url === undefined || url === null) {
      if (!IN_BROWSER) throw new TypeError("the camera's URL is required outside a browser");
      url = window.location.origin;
    }
    /** @type {string} */
    this.url = String(url).replace(/\/+$/, "");
    this._fetch = options.fetch || globalThis.fetch.bind(globalThis);
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    this._basic = options.username != null ? {username: options.username,
      password: options.password ?? ""} : null;
    this._token = options.token || null;
    // After login() in a browser the HttpOnly session cookie authenticates and writes
    // carry the CSRF token the login returned.
    this._csrf = null;
    this._cookieSession = false;
    const request = this._request.bind(this);
    const camera = this;

    /** Recording control. */
    this.recording = {
      /** Start recording. @param {{name?: string, duration?: number}} [opts] */
      start: (opts = {}) => {
        const body = {};
        if (opts.name != null) body.name = opts.name;
        if (opts.duration != null) body.duration = opts.duration;
        return request("POST", "/api/recording/start",
          {body: Object.keys(body).length ? body : undefined});
      },
      /** Stop recording; answers once the file is complete. */
      stop: () => request("POST", "/api/recording/stop"),
      /** Pause recording. */
      pause: () => request("POST", "/api/recording/pause"),
      /** Resume a paused recording. */
      resume: () => request("POST", "/api/recording/resume"),
      /** The recorder's state. */
      status: () => request("GET", "/api/recording/status"),
    };

    /** Stored recordings. */
    this.recordings = {
      /**
       * Every recording (newest first), all pages read.
       * @param {{since?: (Date|number|string), until?: (Date|number|string), limit?: number}} [opts]
       * @returns {Promise<Array<Object>>}
       */
      list: async (opts = {}) => {
        const out = [];
        const page = Math.min(opts.limit || 1000, 1000);
        const query = {};
        for (const name of ["since", "until"]) {
          const v = opts[name];
          if (v != null) query[name] = v instanceof Date ? v.getTime() / 1000 : v;
        }
        for (let offset = 0; ; offset += page) {
          const data = await request("GET", "/api/recordings",
            {query: {...query, offset, limit: page}});
          out.push(...data.recordings);
          if (!data.recordings.length || offset + data.recordings.length >= data.total ||
              (opts.limit && out.length >= opts.limit)) break;
        }
        return opts.limit ? out.slice(0, opts.limit) : out;
      },
      /**
       * A recording's MP4: a Blob in a browser, a Uint8Array in Node (or as `as` says).
       * @param {string} id
       * @param {{as?: ("blob"|"bytes")}} [opts]
       */
      download: (id, opts = {}) => request("GET", "/api/recordings/" + encodeURIComponent(id),
        {binary: opts.as || (IN_BROWSER ? "blob" : "bytes")}),
      /** Delete a recording. @param {string} id */
      delete: (id) => request("DELETE", "/api/recordings/" + encodeURIComponent(id)),
    };

    /** Pan/tilt in degrees (`/api/ptz`); absolute moves through the `pan`/`tilt` settings. */
    const ptz = (method, path, body) => request(method, "/api/ptz" + path,
      body === undefined ? {} : {body});
    this.ptz = {
      /** Position, state, limits and presets. */
      status: () => ptz("GET", ""),
      /** Move to a position in degrees (one batch: both axes at once). */
      move: (pan, tilt) => camera.set({pan, tilt}),
      /**
       * Move by degrees (a step past a limit stops there).
       * @param {number} pan @param {number} tilt @param {{speed?: number}} [opts]
       */
      relative: (pan, tilt, opts = {}) => ptz("POST", "/relative",
        {pan: Number(pan), tilt: Number(tilt), ...(opts.speed != null ? {speed: opts.speed} : {})}),
      /**
       * Move at a velocity (-1..1 per axis) until stop() or the timeout.
       * @param {number} panVelocity @param {number} tiltVelocity
       * @param {{timeout?: number}} [opts] seconds
       */
      continuous: (panVelocity, tiltVelocity, opts = {}) => ptz("POST", "/continuous",
        {pan_velocity: Number(panVelocity), tilt_velocity: Number(tiltVelocity),
          ...(opts.timeout != null ? {timeout: Number(opts.timeout)} : {})}),
      /** Stop pan and tilt. */
      stop: () => ptz("POST", "/stop"),
      /** Go to the home position. */
      home: () => ptz("POST", "/home"),
      /**
       * The stored presets.
       * @returns {Promise<Array<{token: string, name: string, pan: number, tilt: number}>>}
       */
      presets: async () => (await ptz("GET", "/presets")).presets,
      /** Store the current position as a preset; its token. @param {string} name */
      savePreset: async (name) => (await ptz("POST", "/presets", {name})).token,
      /** Move to a preset. @param {string} token */
      goto: (token) => ptz("POST", "/presets/" + encodeURIComponent(token) + "/goto"),
      /** Delete a preset. @param {string} token */
      removePreset: (token) => ptz("DELETE", "/presets/" + encodeURIComponent(token)),
    };

    /** The rotor (the spinning clear-view disc). */
    this.rotor = {
      /**
       * Set any of: running, speed setpoint (rpm), direction ("cw"/"ccw"); one batch.
       * @param {{enabled?: boolean, speed?: number, direction?: string}} opts
       */
      set: (opts = {}) => {
        const values = {};
        if (opts.enabled !== undefined) values["rotor-enabled"] = opts.enabled;
        if (opts.speed !== undefined) values["rotor-speed"] = opts.speed;
        if (opts.direction !== undefined) values["rotor-direction"] = opts.direction;
        return camera.set(values);
      },
    };

    /** User management (admins; a user may change its own password). */
    this.users = {
      /** @returns {Promise<Array<{username: string, role: string, permissions: string[]}>>} */
      list: async () => (await request("GET", "/api/users")).users,
      /** Add a user. @param {string} username @param {string} password @param {string} role */
      add: (username, password, role) => request("POST", "/api/users",
        {body: {username, password, role}}),
      /**
       * Set a password (admins), or change one's own with the current one.
       * @param {string} username @param {string} password @param {{current?: string}} [opts]
       */
      setPassword: (username, password, opts = {}) => request("PUT",
        `/api/users/${encodeURIComponent(username)}/password`,
        {body: opts.current != null ? {password, current: opts.current} : {password}}),
      /** Change a user's role. @param {string} username @param {string} role */
      setRole: (username, role) => request("PUT", `/api/users/${encodeURIComponent(username)}`,
        {body: {role}}),
      /** Delete a user. @param {string} username */
      delete: (username) => request("DELETE", `/api/users/${encodeURIComponent(username)}`),
    };
  }

  // -- HTTP ------------------------------------------------------------------

  /** The Authorization header value for this client's credentials, or null. */
  _authorization() {
    if (this._token && !this._cookieSession) return "Bearer " + this._token;
    if (this._basic) return "Basic " + base64(this._basic.username + ":" + this._basic.password);
    return null;
  }

  /**
   * One REST call; the envelope's data (or the bytes), RotorDreamError otherwise.
   * @param {string} method @param {string} path
   * @param {{body?: *, query?: Object, binary?: string}} [opts]
   */
  async _request(method, path, opts = {}) {
    const headers = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"};
    const auth = this._authorization();
    if (auth) headers["Authorization"] = auth;
    if (this._cookieSession && this._csrf && method !== "GET") headers["X-CSRF-Token"] = this._csrf;
    let url = this.url + path;
    if (opts.query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(opts.query)) if (v != null) q.set(k, String(v));
      if ([...q].length) url += "?" + q;
    }
    const init = {method, headers, credentials: "same-origin", cache: "no-store"};
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let response;
    try {
      response = await this._fetch(url, init);
    } catch (e) {
      throw new RotorDreamError(`cannot reach ${this.url}: ${e.message}`,
        {code: "UNREACHABLE"});
    }
    if (response.ok && opts.binary) {
      const blob = await response.blob();
      const length = response.headers.get("content-length");
      if (length != null && Number(length) !== blob.size) {
        throw new RotorDreamError(`got ${blob.size} of ${length} bytes`,
          {code: "INCOMPLETE", status: response.status});
      }
      return opts.binary === "blob" ? blob : new Uint8Array(await blob.arrayBuffer());
    }
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      throw RotorDreamError.fromEnvelope(body || {}, response.status,
        response.headers.get("retry-after"));
    }
    if (body && body.status === "success") return body.data;
    throw new RotorDreamError("not a RotorDream answer", {code: "BAD_RESPONSE",
      status: response.status});
  }

  // -- the camera --------------------------------------------------------------

  /** Product, version, capabilities and stream URLs (public). */
  info() {
    return this._request("GET", "/api/info");
  }

  /** Uptime, CPU, memory, disk, encoder counters, recording and clients. */
  status() {
    return this._request("GET", "/api/status");
  }

  /**
   * Some settings: `get("brightness", "contrast")` -> `{brightness: 50, contrast: 50}`.
   * With no keys, every readable one (as getAll()).
   * @param {...string} keys
   * @returns {Promise<Object<string, *>>}
   */
  async get(...keys) {
    if (keys.length === 1 && Array.isArray(keys[0])) keys = keys[0];
    if (!keys.length) return this.getAll();
    if (keys.length === 1) {
      return this._request("GET", "/api/settings/" + encodeURIComponent(keys[0]));
    }
    const all = await this.getAll();
    const out = {};
    for (const key of keys) {
      // A key not in the full reading (an alias, unknown or unreadable) asks for itself,
      // so its error is the camera's own.
      Object.assign(out, key in all ? {[key]: all[key]} : await this.get(key));
    }
    return out;
  }

  /** Every setting this client may read. @returns {Promise<Object<string, *>>} */
  getAll() {
    return this._request("GET", "/api/settings");
  }

  /**
   * Change settings: one batch, all or nothing. Resolves to the new values.
   * @param {Object<string, *>} values
   */
  set(values) {
    return this._request("POST", "/api/settings", {body: values});
  }

  /**
   * A JPEG of the latest frame: a Blob in a browser, a Uint8Array in Node.
   * @param {{quality?: number, as?: ("blob"|"bytes")}} [opts]
   */
  snapshot(opts = {}) {
    return this._request("GET", "/api/snapshot", {query: {quality: opts.quality},
      binary: opts.as || (IN_BROWSER ? "blob" : "bytes")});
  }

  /**
   * The RTSP URL of a stream, pinned to a transport, with ?token= when this client
   * holds a token.
   * @param {string} [name] "stream1" or "stream2"
   * @param {{transport?: ("tcp"|"udp")}} [opts]
   * @returns {Promise<string>}
   */
  async streamUrl(name = "stream1", opts = {}) {
    const info = await this.info();
    const stream = info.streams[name];
    if (!stream) {
      throw new RotorDreamError(`no stream ${name}`, {code: "NOT_FOUND", key: "stream",
        allowed: Object.keys(info.streams)});
    }
    const query = [];
    if (opts.transport) {
      if (!["tcp", "udp"].includes(opts.transport)) {
        throw new RotorDreamError("transport must be tcp or udp",
          {code: "INVALID_VALUE", key: "transport", allowed: ["tcp", "udp"]});
      }
      query.push(opts.transport);
    }
    if (this._token) query.push("token=" + encodeURIComponent(this._token));
    return stream.url + (query.length ? "?" + query.join("&") : "");
  }

  // -- sessions ------------------------------------------------------------------

  /**
   * Log in: the camera's token is used from now on (in a browser through its
   * HttpOnly session cookie plus the CSRF token for writes).
   * @param {string} username @param {string} password
   * @returns {Promise<{user: string, role: string, permissions: string[], expires: number}>}
   */
  async login(username, password) {
    const before = [this._basic, this._token, this._cookieSession];
    // The login itself goes without the credentials it replaces.
    this._basic = null;
    this._token = null;
    this._cookieSession = false;
    let data;
    try {
      data = await this._request("POST", "/api/login", {body: {username, password}});
    } catch (e) {
      [this._basic, this._token, this._cookieSession] = before;
      throw e;
    }
    this._token = data.token;
    this._csrf = data.csrf_token;
    this._cookieSession = IN_BROWSER;
    return {user: data.user, role: data.role, permissions: data.permissions,
      expires: data.expires};
  }

  /**
   * Continue a browser's cookie session after a page reload: the HttpOnly cookie still
   * authenticates, and writes send the CSRF token its login returned (`csrfToken`).
   * @param {string} csrf
   */
  resumeSession(csrf) {
    this._token = null;
    this._basic = null;
    this._csrf = csrf;
    this._cookieSession = IN_BROWSER;
  }

  /** The CSRF token of this browser's cookie session, or null. @returns {?string} */
  get csrfToken() {
    return this._cookieSession ? this._csrf : null;
  }

  /**
   * Any other call of the camera's REST API, with this client's credentials: the
   * envelope's data, RotorDreamError otherwise.
   * @param {string} method @param {string} path e.g. "/api/ptz/home"
   * @param {{body?: *, query?: Object}} [opts]
   */
  request(method, path, opts = {}) {
    return this._request(method, path, {body: opts.body, query: opts.query});
  }

  /** Log out: the camera revokes the token (and clears the session cookie). */
  async logout() {
    try {
      return await this._request("POST", "/api/logout");
    } finally {
      this._token = null;
      this._csrf = null;
      this._cookieSession = false;
      this._basic = null;
    }
  }

  // -- state changes over the WebSocket ---------------------------------------------

  /** The control WebSocket's URL. */
  _wsUrl() {
    return this.url.replace(/^http/, "ws") + "/api/v1";
  }

  /** The in-band login message for this client's credentials, or null. */
  _wsLogin() {
    if (this._token) return {token: this._token};
    if (this._basic) return {username: this._basic.username, password: this._basic.password};
    return null;
  }

  /**
   * Call `callback(changes, {resync})` for every change of the watched keys, from any
   * client. Reconnects with capped exponential backoff; after a reconnect it re-reads the
   * keys and reports what changed meanwhile (`resync: true`). Keys are the camera's own
   * names (as getAll() lists them); without `keys`, every key this client may read.
   * @param {WatchCallback} callback
   * @param {{keys?: string[], minDelay?: number, maxDelay?: number,
   *          onError?: function(RotorDreamError): void,
   *          onConnection?: function(boolean): void}} [opts] delays in ms
   * @returns {Watch}
   */
  watch(callback, opts = {}) {
    const WS = this._WebSocket;
    if (!WS) {
      throw new TypeError("no WebSocket: pass {WebSocket} to the Camera (Node 20: " +
        "--experimental-websocket or the ws package)");
    }
    const minDelay = opts.minDelay ?? 250;
    const maxDelay = opts.maxDelay ?? 10000;
    const onError = opts.onError || (() => {});
    const onConnection = opts.onConnection || (() => {});
    let wanted = opts.keys ? [...opts.keys] : null;
    const values = {};
    let socket = null;
    let timer = null;
    let closed = false;
    let attempt = 0;
    let synced = false;  // a first reading has been made
    let resolveReady, rejectReady;
    const ready = new Promise((resolve, reject) => { resolveReady = resolve; rejectReady = reject; });
    ready.catch(() => {});

    const pick = (msg) => {
      const out = {};
      for (const [k, v] of Object.entries(msg)) {
        if (k !== "info" && (!wanted || wanted.includes(k))) out[k] = v;
      }
      return out;
    };

    const connect = async () => {
      timer = null;
      if (closed) return;
      if (!wanted) {
        // Watching everything: the keys this client may read, so the re-reading after a
        // reconnect can be told apart from a broadcast.
        try {
          wanted = Object.keys(await this.getAll());
        } catch (e) {
          onError(e);
          return retry();
        }
        if (closed) return;
      }
      let ws;
      try {
        ws = socket = new WS(this._wsUrl());
      } catch (e) {
        onError(new RotorDreamError(e.message, {code: "UNREACHABLE"}));
        return retry();
      }
      let phase = "open";
      let pending = {};
      const login = this._wsLogin();
      ws.onopen = () => {
        if (login) {
          phase = "login";
          ws.send(JSON.stringify(login));
        } else {
          phase = "read";
          ws.send(JSON.stringify({get: wanted}));
        }
      };
      ws.onmessage = (event) => {
        let msg;
        try {
          msg = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
        } catch (e) {
          return;
        }
        if (msg.error !== undefined) {
          const err = RotorDreamError.fromEnvelope(msg, null);
          onError(err);
          if (phase === "login" || phase === "read") {
            if (!synced) {
              // Refused from the start (bad credentials, unknown key): retrying cannot help.
              closed = true;
              rejectReady(err);
            }
            ws.close();
          }
          return;
        }
        if (phase === "login") {
          if (msg.authenticated) {
            phase = "read";
            ws.send(JSON.stringify({get: wanted}));
          }
          return;
        }
        if (phase === "read") {
          // Broadcasts sent before the reading came first; the reading holds every key.
          Object.assign(pending, pick(msg));
          if (!wanted.every((k) => k in msg)) return;
          phase = "live";
          attempt = 0;
          const changed = {};
          for (const [k, v] of Object.entries(pending)) {
            if (synced && !same(values[k], v)) changed[k] = v;
            values[k] = v;
          }
          pending = {};
          onConnection(true);
          if (!synced) {
            synced = true;
            resolveReady({...values});
          } else if (Object.keys(changed).length) {
            callback(changed, {resync: true});
          }
          return;
        }
        if (phase === "live") {
          const changes = {};
          for (const [k, v] of Object.entries(pick(msg))) {
            // A batch re-read reply that crossed a broadcast brings nothing new.
            if (!same(values[k], v)) changes[k] = v;
            values[k] = v;
          }
          if (Object.keys(changes).length) callback(changes, {resync: false});
        }
      };
      let lost = false;
      const onLost = () => {
        if (lost) return;
        lost = true;
        if (socket === ws) socket = null;
        try {
          ws.close();
        } catch (e) {
          // already closed
        }
        if (phase === "live" && !closed) onConnection(false);
        retry();
      };
      // Some implementations (Node 20's) end a failed connection with an error and no
      // close event: either one means this socket is gone.
      ws.onerror = onLost;
      ws.onclose = onLost;
    };

    const retry = () => {
      if (closed || timer) return;
      const wait = Math.min(maxDelay, minDelay * 2 ** attempt);
      attempt += 1;
      // Jitter, so that many clients of a restarted camera do not come back at once.
      timer = setTimeout(connect, wait * (0.75 + Math.random() * 0.5));
    };

    connect();
    return {
      ready,
      values,
      close() {
        closed = true;
        if (timer) clearTimeout(timer);
        timer = null;
        if (socket) socket.close();
        socket = null;
        if (!synced) rejectReady(new RotorDreamError("watch closed", {code: "CLOSED"}));
      },
    };
  }

  // -- the live view -------------------------------------------------------------

  /**
   * Show a stream live in `video` over WebRTC: the camera offers, the browser
   * answers (matched to the offer by its id); `switch()` changes the stream without
   * renegotiating, `close()` hangs up.
   * @param {HTMLVideoElement} video
   * @param {{stream?: string, timeout?: number}} [opts] timeout: ms to gather ICE
   * @returns {Promise<LiveView>}
   */
  async live(video, opts = {}) {
    if (typeof RTCPeerConnection === "undefined") {
      throw new RotorDreamError("live() needs a browser with WebRTC", {code: "UNSUPPORTED"});
    }
    const stream = opts.stream || "stream1";
    const offer = await this._request("GET", "/api/webrtc/offer", {query: {stream}});
    // The camera's STUN/TURN servers (TURN with short-lived credentials), for viewers
    // behind NAT.
    const pc = new RTCPeerConnection({iceServers: offer.ice_servers || []});
    // Before setRemoteDescription: that is when the browser fires the track event.
    pc.ontrack = (event) => {
      video.srcObject = event.streams[0] || new MediaStream([event.track]);
      video.muted = true;
      video.playsInline = true;
      const played = video.play && video.play();
      if (played && played.catch) played.catch(() => {});
    };
    const view = {id: offer.id, stream, pc, closed: false};
    try {
      await pc.setRemoteDescription({type: "offer", sdp: offer.sdp});
      await pc.setLocalDescription(await pc.createAnswer());
      await iceGathered(pc, opts.timeout ?? 3000);
      const answer = pc.localDescription;
      await this._request("POST", "/api/webrtc/answer",
        {body: {type: answer.type, sdp: answer.sdp, id: offer.id}});
    } catch (e) {
      pc.close();
      this._request("DELETE", "/api/webrtc/sessions/" + encodeURIComponent(offer.id))
        .catch(() => {});
      throw e;
    }
    const path = "/api/webrtc/sessions/" + encodeURIComponent(offer.id);
    view.switch = async (name) => {
      const data = await this._request("PATCH", path, {body: {stream: name}});
      view.stream = name;
      return data;
    };
    view.close = async () => {
      if (view.closed) return;
      view.closed = true;
      pc.close();
      if (video.srcObject) video.srcObject = null;
      try {
        await this._request("DELETE", path);
      } catch (e) {
        if (e.code !== "NOT_FOUND") throw e;  // the camera ended it already
      }
    };
    if (typeof window !== "undefined" && window.addEventListener) {
      // Leaving the page hangs up too, so the viewing slot frees at once.
      window.addEventListener("pagehide", () => { if (!view.closed) view.close().catch(() => {}); },
        {once: true});
    }
    return view;
  }
}

/**
 * Resolve when `pc` has gathered its ICE candidates (or after `ms`).
 * @param {RTCPeerConnection} pc @param {number} ms
 */
function iceGathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState !== "complete") return;
      pc.removeEventListener("icegatheringstatechange", done);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      pc.removeEventListener("icegatheringstatechange", done);
      resolve();
    }, ms);
    pc.addEventListener("icegatheringstatechange", done);
  });
}

export default Camera;
