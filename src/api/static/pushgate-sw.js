// pushgate service worker: shows a Web Push notification and opens its
// `action` URL when clicked. Register it from pushgate.js (Pushgate#subscribe);
// it is served with `Service-Worker-Allowed: /` so it may control a whole site.
"use strict";

self.addEventListener("push", (event) => {
  let info = {};
  if (event.data) {
    try {
      info = event.data.json();
    } catch (e) {
      info = { body: event.data.text() };
    }
  }
  if (info.silent) return;
  const options = { body: info.body || "", data: info, tag: info.thread_id || undefined };
  if (info.image) options.image = info.image;
  if (typeof info.badge === "number") options.data.badge = info.badge;
  event.waitUntil(self.registration.showNotification(info.title || "", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const action = (event.notification.data || {}).action;
  // Only URLs (absolute, or a path of this site) are opened: an action may
  // also name an in-app handler, such as "open_movie".
  if (typeof action !== "string" || !(/^https?:\/\//.test(action) || action.startsWith("/"))) return;
  const url = new URL(action, self.location.origin);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((w) => w.url === url.href);
      return open ? open.focus() : self.clients.openWindow(url.href);
    }),
  );
});
