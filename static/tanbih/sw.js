/*
 * Tanbih service worker: shows web push notifications and reports what happened to them.
 *
 * A store hosts a one-line worker at its own origin root (so it may control every page):
 *
 *     // https://shop.example/tanbih-sw.js
 *     importScripts("https://tanbih.example/static/tanbih/sw.js");
 *
 * and the SDK registers it as /tanbih-sw.js?key=<publishable key>&api=<Tanbih base URL>.
 * This script reads both from that registration URL (self.location), which stays the same
 * inside imported scripts.
 *
 * Push payload (JSON): {title, body, icon, image, badge, tag, url, code, dir, lang,
 * require_interaction, renotify, silent, timestamp, actions: [{action, title, url, icon}]}
 * (at most two actions are shown). `code` is the message code reports come back with.
 */
(function () {
  "use strict";

  var params = new URL(self.location.href).searchParams;
  var API_KEY = params.get("key") || "";
  var API_BASE = (params.get("api") || self.location.origin).replace(/\/+$/, "");
  var REPORT_URL = API_BASE + "/api/v1/notification-reports";
  var MAX_ACTIONS = 2;

  self.addEventListener("install", function () {
    self.skipWaiting();
  });

  self.addEventListener("activate", function (event) {
    event.waitUntil(self.clients.claim());
  });

  function asText(value, limit) {
    if (value === undefined || value === null) return "";
    return String(value).slice(0, limit || 1000);
  }

  // Only http(s) links are opened; relative ones are resolved against the store's origin.
  function safeUrl(value) {
    if (!value) return "";
    try {
      var url = new URL(String(value), self.location.origin);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : "";
    } catch (e) {
      return "";
    }
  }

  function parsePayload(event) {
    if (!event.data) return {};
    try {
      var data = event.data.json();
      return data && typeof data === "object" ? data : { body: asText(data) };
    } catch (e) {
      return { body: event.data.text() };
    }
  }

  function notificationFromPayload(payload) {
    var actions = Array.isArray(payload.actions) ? payload.actions.slice(0, MAX_ACTIONS) : [];
    var actionUrls = {};
    var shownActions = [];
    actions.forEach(function (item) {
      if (!item || !item.action || !item.title) return;
      var id = asText(item.action, 64);
      actionUrls[id] = safeUrl(item.url);
      var shown = { action: id, title: asText(item.title, 100) };
      if (item.icon) shown.icon = safeUrl(item.icon);
      shownActions.push(shown);
    });
    var options = {
      body: asText(payload.body, 1000),
      dir: payload.dir === "rtl" || payload.dir === "ltr" ? payload.dir : "auto",
      data: {
        code: asText(payload.code, 64),
        url: safeUrl(payload.url),
        actionUrls: actionUrls,
      },
      actions: shownActions,
    };
    if (payload.lang) options.lang = asText(payload.lang, 35);
    ["icon", "image", "badge"].forEach(function (name) {
      var url = safeUrl(payload[name]);
      if (url) options[name] = url;
    });
    if (payload.tag) {
      options.tag = asText(payload.tag, 128);
      options.renotify = !!payload.renotify;
    }
    if (payload.require_interaction) options.requireInteraction = true;
    if (payload.silent) options.silent = true;
    if (typeof payload.timestamp === "number") options.timestamp = payload.timestamp;
    return { title: asText(payload.title, 200) || self.location.hostname, options: options };
  }

  function currentEndpoint() {
    return self.registration.pushManager.getSubscription().then(
      function (sub) { return sub ? sub.endpoint : ""; },
      function () { return ""; }
    );
  }

  // A report that fails is lost rather than retried: it is a statistic, not a message.
  function report(code, kind, action) {
    if (!code || !API_KEY) return Promise.resolve();
    return currentEndpoint().then(function (endpoint) {
      var body = { code: code, kind: kind, occurred_at: new Date().toISOString() };
      if (action) body.action = action;
      if (endpoint) body.endpoint = endpoint;
      return fetch(REPORT_URL, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "application/json", "X-Tanbih-Key": API_KEY },
        body: JSON.stringify(body),
      });
    }).catch(function () {});
  }

  self.addEventListener("push", function (event) {
    var shown = notificationFromPayload(parsePayload(event));
    // "displayed" is reported once the browser has shown it, never for a notification that failed.
    event.waitUntil(
      self.registration.showNotification(shown.title, shown.options).then(function () {
        return report(shown.options.data.code, "displayed");
      })
    );
  });

  function openOrFocus(url) {
    if (!url) return Promise.resolve();
    return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) return windows[i].focus();
      }
      return self.clients.openWindow ? self.clients.openWindow(url) : undefined;
    });
  }

  self.addEventListener("notificationclick", function (event) {
    var notification = event.notification;
    var data = notification.data || {};
    var action = event.action || "";
    var url = (action && data.actionUrls && data.actionUrls[action]) || data.url || "";
    notification.close();
    event.waitUntil(Promise.all([
      openOrFocus(url).catch(function () {}),
      report(data.code, "clicked", action),
    ]));
  });

  self.addEventListener("notificationclose", function (event) {
    var data = event.notification.data || {};
    event.waitUntil(report(data.code, "closed"));
  });

  // The push service rotated the subscription: subscribe again with the same key; the SDK
  // sends the new endpoint to Tanbih on the shopper's next page view.
  self.addEventListener("pushsubscriptionchange", function (event) {
    var old = event.oldSubscription;
    if (!old || !old.options || !old.options.applicationServerKey) return;
    event.waitUntil(self.registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: old.options.applicationServerKey,
    }).catch(function () {}));
  });
})();
