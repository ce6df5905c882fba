// The service worker: keeps the page's shell (HTML, CSS, JS, icons) so the
// dashboard opens with no network and says it is offline. It never stores
// data: /api/*, /stream and everything else not in SHELL go to the network
// untouched. SHELL and VERSION are written in front of this file by web/pwa.py
// from the files the app really serves.
/* global SHELL, VERSION */

const CACHE = `sensor-display-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

const shell = new Set(SHELL.map((path) => new URL(path, self.registration.scope).href));

/** The URL without its query: /display?dim=22-7 is the /display shell. */
function shellKey(request) {
  const url = new URL(request.url);
  return `${url.origin}${url.pathname}`;
}

// Network first, so an online page is always current; the cache only answers
// when the network cannot.
self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (request.method !== "GET" || !shell.has(shellKey(request))) return;
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && response.type === "basic" && !response.redirected) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(shellKey(request), copy));
        }
        return response;
      })
      .catch(() => caches.match(shellKey(request)).then((hit) => hit || Response.error())),
  );
});
