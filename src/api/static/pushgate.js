// pushgate browser client: registers this browser for Web Push and keeps a
// socket to the gateway for messages while the page is open.
// No build step: load it with <script src="/sdk/pushgate.js"></script>.
//
//   const pg = new Pushgate({ key: CLIENT_KEY, userId, userToken });
//   pg.on("notification", (n, frame) => ...);
//   pg.connect();                       // socket, reconnecting with backoff
//   await pg.subscribe();               // Web Push (asks for permission)
//   pg.send({ all: true }, { body: "hi" });
(function (global) {
  "use strict";

  function base64urlToBytes(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }

  function randomId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  class Pushgate {
    // options: key (the app's client key: never a server key), url (the
    // gateway, default this page's origin), userId and userToken (signed
    // by the app's server), clientId, serviceWorker (URL of pushgate-sw.js).
    constructor(options) {
      if (!options || !options.key) throw new Error("Pushgate needs the app's client key");
      this.key = options.key;
      this.url = (options.url || global.location.origin).replace(/\/$/, "");
      this.userId = options.userId || null;
      this.userToken = options.userToken || null;
      // This browser tab's id on the socket (apps in `open` identity mode
      // require one; `verified` ones scope it to the user).
      this.clientId = options.clientId || randomId();
      this.serviceWorker = options.serviceWorker || this.url + "/sdk/pushgate-sw.js";
      this.handlers = {};
      this.socket = null;
      this.lastId = null; // the last message received: `since` on reconnect
      this.attempt = 0;
      this.closed = false;
    }

    // Calls fn for every event `name`: open, close, welcome, notification, error.
    on(name, fn) {
      (this.handlers[name] = this.handlers[name] || []).push(fn);
      return this;
    }

    emit(name, ...args) {
      for (const fn of this.handlers[name] || []) fn(...args);
    }

    async api(method, path, body) {
      const res = await fetch(this.url + path, {
        method,
        headers: { "Authorization": "Bearer " + this.key, "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const data = res.status === 204 ? null : await res.json();
      if (!res.ok) throw Object.assign(new Error(data && data.error ? data.error.message : res.statusText), { status: res.status, body: data });
      return data;
    }

    // Opens the socket and keeps it open: after a drop it reconnects with
    // exponential backoff (1 s doubling to 30 s, with jitter) and asks for
    // what it missed with `since`.
    connect() {
      this.closed = false;
      const params = new URLSearchParams({ key: this.key });
      params.set("client_id", this.clientId);
      if (this.userId) params.set("user_id", this.userId);
      if (this.userToken) params.set("user_token", this.userToken);
      if (this.lastId) params.set("since", this.lastId);
      const ws = new WebSocket(this.url.replace(/^http/, "ws") + "/v1/socket?" + params);
      this.socket = ws;
      ws.onopen = () => {
        this.attempt = 0;
        this.emit("open");
      };
      ws.onmessage = (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (frame.type === "welcome") {
          this.connectedAs = frame.client_id;
          this.emit("welcome", frame.client_id);
        } else if (frame.type === "notification") {
          if (frame.id) this.lastId = frame.id;
          this.emit("notification", frame.notification || {}, frame);
        } else if (frame.type === "error") {
          this.emit("error", frame.error);
        }
      };
      ws.onclose = () => {
        this.emit("close");
        if (this.closed) return;
        const delay = Math.min(30000, 1000 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
        this.attempt += 1;
        this.timer = setTimeout(() => this.connect(), delay);
      };
      return this;
    }

    // Relays a notification through the socket: to {all: true} or {client_id}.
    send(to, notification) {
      if (!this.socket || this.socket.readyState !== WebSocket.OPEN) throw new Error("not connected");
      this.socket.send(JSON.stringify({ type: "send", to, notification }));
    }

    // Closes the socket for good.
    close() {
      this.closed = true;
      clearTimeout(this.timer);
      if (this.socket) this.socket.close();
    }

    // Subscribes this browser to Web Push with the app's VAPID key and
    // registers it as a `web` device (groups, metadata... in `device`).
    // Answers the device, whose `device_secret` proves it later.
    async subscribe(device) {
      if (!("serviceWorker" in navigator) || !("PushManager" in global)) throw new Error("this browser has no Web Push");
      if ((await Notification.requestPermission()) !== "granted") throw new Error("notifications are not allowed");
      const registration = await navigator.serviceWorker.register(this.serviceWorker);
      await navigator.serviceWorker.ready;
      const { public_key } = await this.api("GET", "/v1/web-push/public-key");
      const subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64urlToBytes(public_key),
      });
      const body = Object.assign({}, device, { platform: "web", subscription: subscription.toJSON() });
      if (this.userId) body.user_id = this.userId;
      if (this.userToken) body.user_token = this.userToken;
      return this.api("POST", "/v1/devices", body);
    }
  }

  global.Pushgate = Pushgate;
})(typeof window !== "undefined" ? window : self);
