/* "Use this browser for tests": subscribe this browser to push with Tanbih's VAPID key and register it as
 * the staff member's test device, so "Send test to my browser" reaches it. No inline script, no CDN. */
(function () {
  "use strict";
  var button = document.querySelector("[data-test-device]");
  if (!button) return;
  var status = document.getElementById("test-device-status");
  var sendButton = document.getElementById("to-my-browser");

  function bytesFromBase64Url(text) {
    var padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), function (c) { return c.charCodeAt(0); });
  }

  function say(text) { status.textContent = text; }

  button.addEventListener("click", function () {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !button.dataset.vapidKey) {
      say(button.dataset.unsupported);
      return;
    }
    say(button.dataset.working);
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") throw new Error(button.dataset.denied);
      return navigator.serviceWorker.register(button.dataset.worker, { scope: "/" });
    }).then(function () {
      return navigator.serviceWorker.ready;
    }).then(function (registration) {
      return registration.pushManager.getSubscription().then(function (existing) {
        return existing || registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: bytesFromBase64Url(button.dataset.vapidKey),
        });
      });
    }).then(function (subscription) {
      return fetch(button.dataset.url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": button.dataset.csrf },
        body: JSON.stringify(subscription.toJSON()),
      });
    }).then(function (response) {
      if (!response.ok) {
        return response.json().then(function (body) { throw new Error(body.errors[0].message); });
      }
      say(button.dataset.done);
      if (sendButton) sendButton.hidden = false;
    }).catch(function (error) {
      say(error.message || String(error));
    });
  });
})();
