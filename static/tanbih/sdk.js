/*
 * Tanbih storefront SDK.
 *
 *   <script>
 *     window.tanbih = window.tanbih || function () { (tanbih.q = tanbih.q || []).push(arguments) };
 *   </script>
 *   <script async src="https://tanbih.example/static/tanbih/sdk.js" data-key="tnb_pk_…"></script>
 *
 * Calls made before this file loads (tanbih("track", …)) are queued by the stub above and
 * replayed here, `init` first. See docs/storefront.md for the whole API.
 */
(function (window, document) {
  "use strict";

  var VERSION = "1.0.0";
  var previous = window.tanbih;
  if (previous && previous.loaded) return; // the snippet was included twice

  var STORAGE_PREFIX = "tanbih.";
  var queue = (previous && previous.q) || [];

  // --- Storage that survives a browser refusing localStorage (private modes) ---------
  var memoryStore = {};
  var storage = {
    get: function (name) {
      try {
        var value = window.localStorage.getItem(STORAGE_PREFIX + name);
        return value === null ? memoryStore[name] : value;
      } catch (e) {
        return memoryStore[name];
      }
    },
    set: function (name, value) {
      memoryStore[name] = String(value);
      try { window.localStorage.setItem(STORAGE_PREFIX + name, String(value)); } catch (e) { /* memory only */ }
    },
    remove: function (name) {
      delete memoryStore[name];
      try { window.localStorage.removeItem(STORAGE_PREFIX + name); } catch (e) { /* memory only */ }
    },
  };

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function warn(message, detail) {
    if (window.console && window.console.warn) window.console.warn("[tanbih] " + message, detail || "");
  }

  function emit(name, detail) {
    try {
      document.dispatchEvent(new CustomEvent("tanbih:" + name, { detail: detail || {} }));
    } catch (e) { /* very old browsers */ }
  }

  // --- Options: data attributes of the <script> tag, then tanbih("init", {...}) -------
  var script = document.currentScript || document.querySelector("script[src*='tanbih/sdk']");
  var dataset = (script && script.dataset) || {};

  function apiBaseFromScript() {
    if (!script || !script.src) return window.location.origin;
    var src = new URL(script.src, window.location.href);
    var path = src.pathname.replace(/\/static\/tanbih\/sdk(\.min)?\.js$/, "");
    return src.origin + (path === src.pathname ? "" : path);
  }

  var options = {
    key: dataset.key || "",
    api: dataset.api || apiBaseFromScript(),
    category: dataset.category || "",
    locale: dataset.locale || "",
    serviceWorker: dataset.serviceWorker || "/tanbih-sw.js",
    serviceWorkerScope: dataset.serviceWorkerScope || "/",
    autoPrompt: dataset.prompt !== "off",
    inApp: dataset.inApp !== "off",
  };

  function applyOptions(given) {
    if (!given || typeof given !== "object") return;
    ["key", "api", "category", "locale", "serviceWorker", "serviceWorkerScope"].forEach(function (name) {
      if (typeof given[name] === "string") options[name] = given[name];
    });
    if (given.prompt === false || given.prompt === "off") options.autoPrompt = false;
    if (given.prompt === true || given.prompt === "auto") options.autoPrompt = true;
    if (given.inApp === false || given.inApp === "off") options.inApp = false;
    if (given.inApp === true || given.inApp === "auto") options.inApp = true;
  }

  function apiBase() {
    return options.api.replace(/\/+$/, "");
  }

  // --- Who and where --------------------------------------------------------------
  function anonymousId() {
    var id = storage.get("anonymous_id");
    if (!id) {
      id = randomId();
      storage.set("anonymous_id", id);
    }
    return id;
  }

  function guessTimezone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function guessLocale() {
    var raw = options.locale || document.documentElement.getAttribute("lang") ||
      (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return String(raw).split(/[-_]/)[0].toLowerCase() === "ar" ? "ar" : "en";
  }

  function isRightToLeft() {
    return guessLocale() === "ar";
  }

  // --- Talking to Tanbih ------------------------------------------------------------
  function request(method, path, body, extra) {
    if (!options.key) return Promise.reject(new Error("tanbih: no publishable key; add data-key to the script tag"));
    var init = {
      method: method,
      mode: "cors",
      credentials: "omit",
      headers: { "X-Tanbih-Key": options.key },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var url = apiBase() + "/api/v1/" + path;
    var sent;
    if (extra && extra.keepalive) {
      // Older browsers refuse keepalive with a CORS preflight, and every browser refuses it
      // above 64 kB: send again without it (the caller's event_id makes a repeat harmless).
      var plain = Object.assign({}, init);
      init.keepalive = true;
      sent = window.fetch(url, init).catch(function () { return window.fetch(url, plain); });
    } else {
      sent = window.fetch(url, init);
    }
    return sent.then(function (response) {
      return response.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = {}; }
        if (!response.ok) {
          var first = (data.errors && data.errors[0]) || {};
          var error = new Error("tanbih: " + method + " /api/v1/" + path + " answered " + response.status +
            (first.message ? ": " + first.message : ""));
          error.status = response.status;
          error.errors = data.errors || [];
          throw error;
        }
        return data;
      });
    });
  }

  function reportFailure(error) {
    warn(error.message, error.errors);
    emit("error", { message: error.message, status: error.status, errors: error.errors });
    throw error;
  }

  var configPromise = null;
  function loadConfig() {
    if (!configPromise) {
      configPromise = request("GET", "sdk/config").catch(function (error) {
        configPromise = null;
        return reportFailure(error);
      });
    }
    return configPromise;
  }

  var identifying = []; // identify requests of this page, which the page view's in-app fetch waits for

  function identify(externalId, extra) {
    extra = extra || {};
    if (externalId === undefined || externalId === null || externalId === "") {
      return Promise.reject(new Error("tanbih.identify needs the customer's id"));
    }
    var traits = {};
    var given = extra.traits || {};
    Object.keys(given).forEach(function (name) { traits[name] = given[name]; });
    if (!traits.timezone) traits.timezone = guessTimezone();
    if (!traits.locale) traits.locale = guessLocale();
    if (!traits.timezone) delete traits.timezone;
    var body = { anonymous_id: anonymousId(), external_id: String(externalId), traits: traits };
    if (extra.user_hash) body.user_hash = extra.user_hash;
    var sent = request("POST", "identify", body).then(function (data) {
      var changed = storage.get("identified_as") !== String(externalId);
      storage.set("identified_as", String(externalId));
      emit("identified", { external_id: String(externalId) });
      // This browser may now see the customer's in-app messages.
      if (changed) inAppIdentityChanged();
      return data;
    }, reportFailure);
    identifying.push(sent);
    return sent;
  }

  function track(name, properties) {
    var body = {
      name: name,
      properties: properties || {},
      event_id: randomId(),
      occurred_at: new Date().toISOString(),
      anonymous_id: anonymousId(),
    };
    // keepalive lets a track() fired just before navigation (add to cart, checkout) arrive.
    return request("POST", "events", body, { keepalive: true }).catch(reportFailure);
  }

  function set(values) {
    applyOptions(values);
  }

  function reset() {
    storage.remove("anonymous_id");
    storage.remove("identified_as");
    clearInApp();
    return anonymousId();
  }

  // --- Web push -------------------------------------------------------------------
  function pushSupported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window &&
      window.isSecureContext !== false;
  }

  function base64UrlToBytes(value) {
    var padded = (value + "===".slice((value.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = window.atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function bytesEqual(buffer, bytes) {
    if (!buffer) return false;
    var other = new Uint8Array(buffer);
    if (other.length !== bytes.length) return false;
    for (var i = 0; i < bytes.length; i++) if (other[i] !== bytes[i]) return false;
    return true;
  }

  function serviceWorkerUrl() {
    var url = options.serviceWorker;
    return url + (url.indexOf("?") === -1 ? "?" : "&") +
      "key=" + encodeURIComponent(options.key) + "&api=" + encodeURIComponent(apiBase());
  }

  var registrationPromise = null;
  function registerServiceWorker() {
    if (!registrationPromise) {
      registrationPromise = navigator.serviceWorker.register(serviceWorkerUrl(), {
        scope: options.serviceWorkerScope,
      }).then(function (registration) {
        emit("service-worker", { scope: registration.scope });
        return registration;
      }, function (error) {
        registrationPromise = null;
        warn("could not register the service worker at " + options.serviceWorker +
          " (host it at your site's root; see docs/storefront.md)", error);
        throw error;
      });
    }
    return registrationPromise;
  }

  // pushManager.subscribe needs an active worker; `serviceWorker.ready` would wait forever
  // when the worker's scope does not cover this page.
  function whenActive(registration) {
    if (registration.active) return Promise.resolve(registration);
    var worker = registration.installing || registration.waiting;
    return new Promise(function (resolve, reject) {
      if (!worker) return reject(new Error("tanbih: the service worker did not install"));
      worker.addEventListener("statechange", function () {
        if (worker.state === "activated") resolve(registration);
        if (worker.state === "redundant") reject(new Error("tanbih: the service worker failed to activate"));
      });
    });
  }

  function requestPermission() {
    if (Notification.permission !== "default") return Promise.resolve(Notification.permission);
    return new Promise(function (resolve) {
      // Older Safari takes a callback and returns nothing.
      var result = Notification.requestPermission(resolve);
      if (result && result.then) result.then(resolve);
    });
  }

  function pushSubscription(registration, vapidKey) {
    var keyBytes = base64UrlToBytes(vapidKey);
    return registration.pushManager.getSubscription().then(function (existing) {
      if (existing && existing.options && bytesEqual(existing.options.applicationServerKey, keyBytes)) {
        return existing;
      }
      // A subscription made with another VAPID key can't be reused: replace it.
      var cleared = existing ? existing.unsubscribe() : Promise.resolve();
      return cleared.then(function () {
        return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes });
      });
    });
  }

  function sendSubscription(subscription) {
    var json = subscription.toJSON();
    var body = {
      endpoint: json.endpoint,
      keys: { p256dh: json.keys.p256dh, auth: json.keys.auth },
      user_agent: navigator.userAgent,
      page_url: window.location.href,
      category: options.category,
      anonymous_id: anonymousId(),
      timezone: guessTimezone(),
      locale: guessLocale(),
    };
    return request("POST", "push-subscriptions", body).then(function (data) {
      storage.set("push_endpoint", json.endpoint);
      emit("subscribed", { endpoint: json.endpoint });
      return data;
    });
  }

  /*
   * Ask the browser for permission (when not yet asked), subscribe with Tanbih's VAPID key and
   * send the subscription. Call it from a click: browsers only prompt on a user gesture.
   * Resolves to {status: "subscribed"|"denied"|"dismissed"|"unsupported", endpoint?}.
   */
  function subscribe() {
    if (!pushSupported()) return Promise.resolve({ status: "unsupported" });
    return requestPermission().then(function (permission) {
      if (permission !== "granted") {
        var status = permission === "denied" ? "denied" : "dismissed";
        emit(status, {});
        return { status: status };
      }
      return Promise.all([loadConfig(), registerServiceWorker()]).then(function (results) {
        var vapidKey = results[0].vapid_public_key;
        if (!vapidKey) throw new Error("tanbih: the server has no VAPID key configured");
        return whenActive(results[1]).then(function (registration) {
          return pushSubscription(registration, vapidKey);
        });
      }).then(sendSubscription).then(function () {
        return { status: "subscribed", endpoint: storage.get("push_endpoint") };
      });
    }).catch(reportFailure);
  }

  function unsubscribe() {
    if (!pushSupported()) return Promise.resolve({ status: "unsupported" });
    return navigator.serviceWorker.getRegistration(options.serviceWorkerScope).then(function (registration) {
      return registration ? registration.pushManager.getSubscription() : null;
    }).then(function (subscription) {
      var endpoint = (subscription && subscription.endpoint) || storage.get("push_endpoint");
      var local = subscription ? subscription.unsubscribe() : Promise.resolve();
      return local.then(function () {
        storage.remove("push_endpoint");
        if (!endpoint) return { status: "unsubscribed" };
        return request("POST", "push-subscriptions/unsubscribe", { endpoint: endpoint }).then(function () {
          emit("unsubscribed", { endpoint: endpoint });
          return { status: "unsubscribed", endpoint: endpoint };
        });
      });
    }).catch(reportFailure);
  }

  // Keep Tanbih's copy in step with the browser: a rotated subscription is sent again,
  // and notifications blocked in the browser's settings are reported as unsubscribed.
  function syncSubscription(config) {
    if (Notification.permission === "denied" && storage.get("push_endpoint")) {
      var endpoint = storage.get("push_endpoint");
      storage.remove("push_endpoint");
      return request("POST", "push-subscriptions/unsubscribe", { endpoint: endpoint }).catch(function () {});
    }
    if (Notification.permission !== "granted" || !config.vapid_public_key) return Promise.resolve();
    return registerServiceWorker().then(whenActive).then(function (registration) {
      return pushSubscription(registration, config.vapid_public_key);
    }).then(function (subscription) {
      if (subscription.endpoint !== storage.get("push_endpoint")) return sendSubscription(subscription);
    }).catch(function (error) { warn("could not refresh the push subscription", error); });
  }

  // --- The soft opt-in prompt -------------------------------------------------------
  var DAY_MS = 24 * 60 * 60 * 1000;
  // The events the prompt reports through track(), so the opt-in rate is prompts accepted / shown.
  var PROMPT_EVENTS = {
    shown: "push_prompt_shown", accepted: "push_prompt_accepted", declined: "push_prompt_declined",
  };
  var promptHost = null;
  var focusBeforePrompt = null;

  function pageMatches(patterns) {
    if (!patterns || !patterns.length) return true;
    var path = window.location.pathname;
    return patterns.some(function (pattern) {
      pattern = String(pattern);
      if (pattern.indexOf("*") === -1) return path.indexOf(pattern) === 0;
      var regex = new RegExp("^" + pattern.split("*").map(function (part) {
        return part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
      }).join(".*") + "$");
      return regex.test(path);
    });
  }

  function declinedRecently(days) {
    var at = parseInt(storage.get("prompt_declined_at") || "", 10);
    return !isNaN(at) && Date.now() - at < days * DAY_MS;
  }

  var PROMPT_CSS = [
    ":host { all: initial; }",
    ".box { position: fixed; top: 16px; left: 50%; transform: translateX(-50%); z-index: 2147483000;",
    "  width: min(420px, calc(100vw - 32px)); box-sizing: border-box; padding: 16px 18px;",
    "  background: #fff; color: #1d2430; border-radius: 10px; box-shadow: 0 8px 30px rgba(0,0,0,.22);",
    "  font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', Tahoma, 'Noto Sans Arabic', sans-serif; }",
    ".box:focus { outline: none; }",
    "h2 { margin: 0 0 4px; font-size: 16px; font-weight: 600; }",
    "p { margin: 0 0 14px; color: #4a5568; }",
    ".buttons { display: flex; gap: 8px; justify-content: flex-end; }",
    "button { font: inherit; border-radius: 6px; padding: 8px 16px; cursor: pointer; border: 1px solid #cbd5e0; }",
    "button:focus-visible { outline: 3px solid #2b6cb0; outline-offset: 2px; }",
    ".accept { background: #2b6cb0; border-color: #2b6cb0; color: #fff; }",
    ".decline { background: #fff; color: #2d3748; }",
  ].join("\n");

  function closePrompt() {
    var hadFocus = promptHost && promptHost.shadowRoot && promptHost.shadowRoot.activeElement;
    if (promptHost && promptHost.parentNode) promptHost.parentNode.removeChild(promptHost);
    promptHost = null;
    // Give the keyboard back where the shopper was.
    if (hadFocus && focusBeforePrompt && focusBeforePrompt.focus) focusBeforePrompt.focus({ preventScroll: true });
    focusBeforePrompt = null;
  }

  function showPrompt(config) {
    if (promptHost) return;
    var lang = guessLocale();
    var texts = (config.prompt.texts && (config.prompt.texts[lang] || config.prompt.texts.en)) || {};
    var dir = isRightToLeft() ? "rtl" : "ltr";

    promptHost = document.createElement("div");
    promptHost.id = "tanbih-prompt";
    var root = promptHost.attachShadow ? promptHost.attachShadow({ mode: "open" }) : promptHost;
    var style = document.createElement("style");
    style.textContent = PROMPT_CSS;
    root.appendChild(style);

    var box = document.createElement("div");
    box.className = "box";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "false");
    box.setAttribute("aria-labelledby", "tanbih-prompt-title");
    box.setAttribute("aria-describedby", "tanbih-prompt-body");
    box.setAttribute("dir", dir);
    box.setAttribute("lang", lang);
    box.tabIndex = -1;

    var title = document.createElement("h2");
    title.id = "tanbih-prompt-title";
    title.textContent = texts.title || "";
    var body = document.createElement("p");
    body.id = "tanbih-prompt-body";
    body.textContent = texts.body || "";
    var buttons = document.createElement("div");
    buttons.className = "buttons";
    var accept = document.createElement("button");
    accept.type = "button";
    accept.className = "accept";
    accept.textContent = texts.accept || "OK";
    var decline = document.createElement("button");
    decline.type = "button";
    decline.className = "decline";
    decline.textContent = texts.decline || "Not now";
    buttons.appendChild(decline);
    buttons.appendChild(accept);
    box.appendChild(title);
    box.appendChild(body);
    box.appendChild(buttons);
    root.appendChild(box);

    function onDecline() {
      storage.set("prompt_declined_at", String(Date.now()));
      closePrompt();
      track(PROMPT_EVENTS.declined, { lang: lang });
      emit("declined", {});
    }
    accept.addEventListener("click", function () {
      closePrompt();
      track(PROMPT_EVENTS.accepted, { lang: lang });
      emit("accepted", {});
      subscribe().catch(function () {});
    });
    decline.addEventListener("click", onDecline);
    box.addEventListener("keydown", function (event) {
      if (event.key === "Escape") onDecline();
    });

    document.body.appendChild(promptHost);
    // Announce the prompt to screen readers without stealing focus from a form being filled in.
    var active = document.activeElement;
    var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
    if (!typing) {
      focusBeforePrompt = active;
      box.focus({ preventScroll: true });
    }
    // Counted by the dashboard's push opt-in rate (docs/events.md, docs/analytics.md).
    track(PROMPT_EVENTS.shown, { lang: lang, page: window.location.pathname });
    emit("prompt", { lang: lang, dir: dir });
  }

  // Schedules the soft prompt when this shopper, on this page, should see it; returns the
  // delay in milliseconds, or null when it won't appear.
  function promptWhenDue(config) {
    var prompt = config.prompt || {};
    if (!options.autoPrompt || !prompt.enabled || !config.vapid_public_key) return null;
    if (!pushSupported() || Notification.permission !== "default") return null;
    if (!pageMatches(prompt.page_patterns)) return null;
    if (declinedRecently(prompt.reprompt_after_days || 0)) return null;
    var delay = Math.max(0, prompt.delay_seconds || 0) * 1000;
    window.setTimeout(function () {
      // The shopper may have subscribed another way (a button calling tanbih.subscribe()).
      if (Notification.permission === "default" && !declinedRecently(prompt.reprompt_after_days || 0)) {
        showPrompt(config);
      }
    }, delay);
    return delay;
  }

  // --- In-app messages --------------------------------------------------------------
  // On each page view (and when identify ties this browser to another customer) the SDK asks
  // GET /api/v1/inapp for the shopper's pending messages and shows them newest first, one at
  // a time. Message text only ever goes into textContent; links and images must be http(s).
  var INAPP_PLACEMENTS = { banner: "banner", top: "banner", bottom: "bottom", modal: "modal" };
  var INAPP_TEXTS = {
    en: { close: "Close", open: "Open" },
    ar: { close: "إغلاق", open: "افتح" },
  };
  var INAPP_SEEN_KEEP = 200; // codes remembered in localStorage so a message never shows twice here
  var inAppQueue = [];
  var inAppKnown = {}; // codes queued or shown on this page
  var inAppCurrent = null;
  var inAppWaitingForPage = false;
  var inAppStarted = false; // the page view's fetch has gone out

  var INAPP_CSS = [
    ":host { all: initial; }",
    ".box { position: fixed; z-index: 2147482999; box-sizing: border-box; display: flex; align-items: center;",
    "  gap: 12px; background: #fff; color: #1d2430; box-shadow: 0 6px 24px rgba(0,0,0,.18);",
    "  font: 15px/1.5 system-ui, -apple-system, 'Segoe UI', Tahoma, 'Noto Sans Arabic', sans-serif; }",
    ".box:focus { outline: none; }",
    ".box.banner, .box.bottom { left: 0; right: 0; padding: 12px 16px; }",
    ".box.banner { top: 0; border-bottom: 1px solid #e2e8f0; }",
    ".box.bottom { bottom: 0; border-top: 1px solid #e2e8f0; }",
    ".box.modal { top: 50%; left: 50%; transform: translate(-50%, -50%); flex-direction: column; align-items: stretch;",
    "  width: min(440px, calc(100vw - 32px)); max-height: calc(100vh - 32px); overflow: auto; padding: 24px 20px 20px;",
    "  border-radius: 12px; z-index: 2147483000; }",
    ".backdrop { position: fixed; inset: 0; background: rgba(15,23,42,.5); z-index: 2147482999; }",
    ".text { flex: 1; min-width: 0; }",
    "h2 { margin: 0; font-size: 16px; font-weight: 600; overflow-wrap: anywhere; }",
    "p { margin: 2px 0 0; color: #4a5568; white-space: pre-line; overflow-wrap: anywhere; }",
    "img { flex: none; width: 56px; height: 56px; object-fit: cover; border-radius: 6px; }",
    ".modal img { width: 100%; height: auto; max-height: 240px; }",
    ".action { flex: none; display: inline-block; text-align: center; text-decoration: none; border-radius: 6px;",
    "  padding: 8px 16px; background: #2b6cb0; color: #fff; font-weight: 600; }",
    ".close { flex: none; font: inherit; font-size: 22px; line-height: 1; padding: 4px 8px; border: 0;",
    "  border-radius: 6px; background: transparent; color: #4a5568; cursor: pointer; }",
    ".modal .close { position: absolute; top: 6px; inset-inline-end: 6px; }",
    ".action:focus-visible, .close:focus-visible { outline: 3px solid #2b6cb0; outline-offset: 2px; }",
  ].join("\n");

  function isHttpUrl(value) {
    return typeof value === "string" && /^https?:\/\/[^\s]+$/i.test(value);
  }

  function seenCodes() {
    try {
      var list = JSON.parse(storage.get("inapp_seen") || "[]");
      return Array.isArray(list) ? list : [];
    } catch (e) {
      return [];
    }
  }

  function rememberSeen(code) {
    var list = seenCodes().filter(function (seen) { return seen !== code; });
    list.push(code);
    storage.set("inapp_seen", JSON.stringify(list.slice(-INAPP_SEEN_KEEP)));
  }

  function reportSeen(code) {
    // keepalive: the shopper may leave the page right after it appeared.
    var body = { anonymous_id: anonymousId() };
    return request("POST", "inapp/" + encodeURIComponent(code) + "/seen", body, { keepalive: true })
      .catch(function (error) { warn("could not report in-app message " + code + " as shown", error); });
  }

  function sentAt(message) {
    var at = Date.parse(message.sent_at || "");
    return isNaN(at) ? 0 : at;
  }

  // Asks for pending messages and queues the new ones; resolves to {queued: n}.
  function fetchInApp() {
    return request("GET", "inapp?anonymous_id=" + encodeURIComponent(anonymousId())).then(function (data) {
      var seen = seenCodes();
      var queued = 0;
      (data.messages || []).forEach(function (message) {
        if (!message || typeof message.code !== "string" || inAppKnown[message.code]) return;
        inAppKnown[message.code] = true;
        if (seen.indexOf(message.code) !== -1) {
          // Shown in this browser before, but the report never arrived: report it, don't show it again.
          reportSeen(message.code);
          return;
        }
        inAppQueue.push(message);
        queued += 1;
      });
      inAppQueue.sort(function (a, b) { return sentAt(b) - sentAt(a); });
      showNextInApp();
      return { queued: queued };
    }, reportFailure);
  }

  function showNextInApp() {
    if (inAppCurrent || !inAppQueue.length || inAppWaitingForPage) return;
    // Shown means seen: wait for the page to exist and for its tab to be in front.
    var event = !document.body ? "DOMContentLoaded" : document.visibilityState === "hidden" ? "visibilitychange" : "";
    if (event) {
      inAppWaitingForPage = true;
      document.addEventListener(event, function again() {
        if (event === "visibilitychange" && document.visibilityState === "hidden") return;
        document.removeEventListener(event, again);
        inAppWaitingForPage = false;
        showNextInApp();
      });
      return;
    }
    renderInApp(inAppQueue.shift());
  }

  function focusableIn(box) {
    return Array.prototype.slice.call(box.querySelectorAll("a[href], button"));
  }

  function renderInApp(message) {
    var placement = INAPP_PLACEMENTS[message.placement] || "banner";
    var locale = String(message.locale || "").split(/[-_]/)[0].toLowerCase();
    var lang = locale ? (locale === "ar" ? "ar" : "en") : guessLocale();
    var dir = lang === "ar" ? "rtl" : "ltr";
    var texts = INAPP_TEXTS[lang];
    var modal = placement === "modal";

    var host = document.createElement("div");
    host.id = "tanbih-inapp";
    host.setAttribute("data-code", message.code);
    host.setAttribute("data-placement", placement);
    var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
    var style = document.createElement("style");
    style.textContent = INAPP_CSS;
    root.appendChild(style);

    var backdrop = null;
    if (modal) {
      backdrop = document.createElement("div");
      backdrop.className = "backdrop";
      root.appendChild(backdrop);
    }

    var box = document.createElement("div");
    box.className = "box " + placement;
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", modal ? "true" : "false");
    box.setAttribute("dir", dir);
    box.setAttribute("lang", lang);
    box.tabIndex = -1;

    if (isHttpUrl(message.image)) {
      var image = document.createElement("img");
      image.alt = "";
      image.referrerPolicy = "no-referrer";
      image.src = message.image;
      image.addEventListener("error", function () { if (image.parentNode) image.parentNode.removeChild(image); });
      box.appendChild(image);
    }
    var text = document.createElement("div");
    text.className = "text";
    if (message.title) {
      var title = document.createElement("h2");
      title.id = "tanbih-inapp-title";
      title.textContent = message.title;
      text.appendChild(title);
      box.setAttribute("aria-labelledby", title.id);
    }
    if (message.body) {
      var body = document.createElement("p");
      body.id = "tanbih-inapp-body";
      body.textContent = message.body;
      text.appendChild(body);
      box.setAttribute(message.title ? "aria-describedby" : "aria-labelledby", body.id);
    }
    box.appendChild(text);
    if (isHttpUrl(message.button_url)) {
      // The tracked link: Tanbih records the click, then sends the shopper to the target.
      var action = document.createElement("a");
      action.className = "action";
      action.href = message.button_url;
      action.textContent = message.button_label || texts.open;
      action.addEventListener("click", function () {
        emit("inapp:clicked", { code: message.code, placement: placement });
      });
      box.appendChild(action);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.setAttribute("aria-label", texts.close);
    close.textContent = "\u00d7";
    box.appendChild(close);
    root.appendChild(box);

    function onKey(event) {
      var inside = document.activeElement === host;
      if (event.key === "Escape" && (modal || inside)) {
        event.preventDefault();
        dismissInApp("escape");
      } else if (event.key === "Tab" && modal) {
        // Keep the keyboard inside a modal message.
        var items = focusableIn(box);
        var active = root.activeElement;
        var last = items[items.length - 1];
        if (event.shiftKey && (active === items[0] || active === box || !inside)) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && (active === last || !inside)) {
          event.preventDefault();
          items[0].focus();
        }
      }
    }
    close.addEventListener("click", function () { dismissInApp("close"); });
    if (backdrop) backdrop.addEventListener("click", function () { dismissInApp("backdrop"); });
    document.addEventListener("keydown", onKey, true);

    var active = document.activeElement;
    inAppCurrent = { message: message, placement: placement, host: host, onKey: onKey, focusBefore: active };
    document.body.appendChild(host);
    // A modal takes the keyboard; a banner does too, unless the shopper is typing in a form.
    var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
    if (modal || !typing) box.focus({ preventScroll: true });

    rememberSeen(message.code);
    reportSeen(message.code);
    emit("inapp:shown", { code: message.code, placement: placement, lang: lang, dir: dir });
  }

  function dismissInApp(reason) {
    var current = inAppCurrent;
    if (!current) return;
    inAppCurrent = null;
    document.removeEventListener("keydown", current.onKey, true);
    var hadFocus = document.activeElement === current.host;
    if (current.host.parentNode) current.host.parentNode.removeChild(current.host);
    // Give the keyboard back where the shopper was.
    if (hadFocus && current.focusBefore && current.focusBefore.focus && current.focusBefore !== document.body) {
      current.focusBefore.focus({ preventScroll: true });
    }
    emit("inapp:dismissed", { code: current.message.code, placement: current.placement, reason: reason });
    showNextInApp();
  }

  function whenDomReady() {
    if (document.readyState !== "loading") return Promise.resolve();
    return new Promise(function (resolve) { document.addEventListener("DOMContentLoaded", resolve); });
  }

  // The page view's fetch goes out once the page's own identify calls have answered, so a
  // shopper who just logged in sees their messages on this very page.
  function inAppOnPageView() {
    var waits = identifying.map(function (sent) { return sent.then(function () {}, function () {}); });
    waits.push(whenDomReady());
    Promise.all(waits).then(function () {
      inAppStarted = true;
      return fetchInApp();
    }).catch(function () {});
  }

  function inAppIdentityChanged() {
    if (inAppStarted && options.inApp) fetchInApp().catch(function () {});
  }

  // Log-out: what was fetched for the customer is not for the next person at this browser.
  function clearInApp() {
    inAppQueue = [];
    inAppKnown = {};
    dismissInApp("reset");
  }

  // A page restored from the back/forward cache is a page view that ran no script.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && inAppStarted && options.inApp) fetchInApp().catch(function () {});
  });

  // --- Commands, the queue and start-up ---------------------------------------------
  var started = false;
  var waiting = [];

  function start() {
    if (started || !options.key) return;
    started = true;
    anonymousId();
    if (pushSupported()) {
      registerServiceWorker().catch(function () {});
    }
    loadConfig().then(function (config) {
      if (pushSupported()) syncSubscription(config);
      function decide() {
        var delay = pushSupported() ? promptWhenDue(config) : null;
        emit("config", { push_supported: pushSupported(), prompt_in_ms: delay });
      }
      if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", decide);
      } else {
        decide();
      }
    }, function () {});
    var pending = waiting;
    waiting = [];
    pending.forEach(function (call) { run(call); });
    if (options.inApp) inAppOnPageView();
    emit("ready", { anonymous_id: anonymousId() });
  }

  var commands = {
    init: function (given) { applyOptions(given); start(); },
    identify: identify,
    track: track,
    subscribe: subscribe,
    unsubscribe: unsubscribe,
    set: set,
    reset: reset,
    showPrompt: function () {
      return loadConfig().then(function (config) {
        if (pushSupported() && Notification.permission === "default") showPrompt(config);
      });
    },
    showInApp: fetchInApp,
  };

  function run(args) {
    var name = args[0];
    if (typeof name === "function") return name(api);
    if (name !== "init" && name !== "set" && !started) {
      waiting.push(args);
      return undefined;
    }
    var command = commands[name];
    if (!command) {
      warn("unknown command '" + name + "'");
      return undefined;
    }
    var result = command.apply(null, Array.prototype.slice.call(args, 1));
    // Queued fire-and-forget calls must not surface as unhandled rejections.
    if (result && result.catch) result.catch(function () {});
    return result;
  }

  function api() {
    return run(arguments);
  }
  api.loaded = true;
  api.version = VERSION;
  api.q = [];
  api.init = function (given) { return run(["init", given]); };
  api.identify = function (externalId, extra) { return run(["identify", externalId, extra]); };
  api.track = function (name, properties) { return run(["track", name, properties]); };
  api.subscribe = function () { return run(["subscribe"]); };
  api.unsubscribe = function () { return run(["unsubscribe"]); };
  api.set = function (values) { return run(["set", values]); };
  api.reset = function () { return run(["reset"]); };
  api.showPrompt = function () { return run(["showPrompt"]); };
  api.showInApp = function () { return run(["showInApp"]); };
  api.anonymousId = anonymousId;
  window.tanbih = api;

  // `init` calls take effect first, wherever they were queued; then everything else in order.
  queue.forEach(function (args) { if (args[0] === "init" || args[0] === "set") applyOptions(args[1]); });
  queue.forEach(function (args) { if (args[0] !== "init" && args[0] !== "set") run(args); });
  start();
})(window, document);
