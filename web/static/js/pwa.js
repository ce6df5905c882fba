// Offline use: register the service worker that keeps the page's shell
// (web/pwa.py). Data never come from it; without a network the page opens and
// says it is offline.

/** Register the worker; a browser without them (or an insecure origin) just stays online-only. */
export function registerShell() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("sw.js").catch((error) => {
    console.warn("offline use unavailable:", error.message);
  });
}

/** What to call a stream that cannot connect: the device is offline, or the server is away. */
export function unreachableLabel() {
  return navigator.onLine ? "Server unreachable, retrying" : "Offline: no network, retrying";
}
