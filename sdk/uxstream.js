/*
 * uxstream first-party snippet: plain JavaScript, no build step.
 *
 *   <script src="/uxstream.js"></script>
 *   <script>uxstream.init({ endpoint: "https://collect.example", writeKey: "wk_..." });</script>
 *
 * Sends page views, clicks, errors (window.onerror, unhandled rejections), web vitals (when the
 * web-vitals IIFE build is loaded before it: the global `webVitals`) and heartbeats while the page is
 * visible to POST {endpoint}/v1/batch, batched every 500 ms; on page hide what is queued goes with
 * navigator.sendBeacon. A refused batch (429, 503, other 5xx, network error) is kept and retried with
 * exponential backoff, honouring Retry-After. Every event carries an event_id (a re-sent batch is a
 * duplicate the jobs drop) and, in `properties`, the page load's id (`uxs_load`) and its sequence number
 * in that page load (`uxs_seq`, from 1), so loss between the browser and Kafka shows as a gap.
 */
(function (global) {
  "use strict";

  var VERSION = "0.1.0";
  var doc = global.document;
  var nav = global.navigator;

  function uuid() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function stored(storage, key) {
    try {
      var value = storage.getItem(key);
      if (!value) {
        value = uuid();
        storage.setItem(key, value);
      }
      return value;
    } catch (e) {
      return uuid(); // storage blocked: one id per page load
    }
  }

  function utm() {
    var out = {};
    try {
      var params = new URLSearchParams(global.location.search);
      ["utm_source", "utm_medium", "utm_campaign"].forEach(function (name) {
        if (params.get(name)) out[name] = params.get(name);
      });
    } catch (e) { /* no URLSearchParams: no UTM fields */ }
    return out;
  }

  function describe(element) {
    if (!element || !element.tagName) return {};
    var props = { element: element.tagName.toLowerCase() };
    if (element.id) props.element_id = element.id;
    var text = (element.innerText || element.textContent || "").trim();
    if (text) props.element_text = text.slice(0, 200);
    if (element.href) props.element_href = String(element.href).slice(0, 256);
    return props;
  }

  function Tracker(options) {
    if (!options || !options.endpoint || !options.writeKey) {
      throw new Error("uxstream.init needs { endpoint, writeKey }");
    }
    this.endpoint = String(options.endpoint).replace(/\/+$/, "") + "/v1/batch";
    this.writeKey = options.writeKey;
    this.flushMs = options.flushIntervalMs || 500;
    this.heartbeatMs = options.heartbeatIntervalMs || 15000;
    this.maxBackoffMs = options.maxBackoffMs || 30000;
    this.maxQueue = options.maxQueue || 1000;
    this.userId = options.userId || null;
    this.anonymousId = stored(global.localStorage, "uxs_anon");
    this.sessionHint = stored(global.sessionStorage, "uxs_session");
    this.loadId = uuid();
    this.seq = 0;
    this.queue = [];
    this.inFlight = null;
    this.retryAt = 0;
    this.failures = 0;
    this.visibleSince = doc.visibilityState === "visible" ? Date.now() : null;
    this.engagedMs = 0;
    this.sent = 0;
    this.start(options);
  }

  Tracker.prototype.event = function (type, name, fields, properties) {
    var props = { uxs_load: this.loadId, uxs_seq: String(++this.seq) };
    if (properties) {
      Object.keys(properties).forEach(function (key) {
        var value = properties[key];
        if (value !== undefined && value !== null) props[key] = typeof value === "string" ? value : JSON.stringify(value);
      });
    }
    var event = {
      event_id: uuid(),
      event_type: type,
      event_name: name,
      anonymous_id: this.anonymousId,
      ts: Date.now(),
      page_url: global.location.href,
      page_path: global.location.pathname || "/",
      page_title: doc.title || undefined,
      referrer: doc.referrer || undefined,
      user_agent: nav.userAgent,
      app_version: "uxstream-js " + VERSION,
      session_hint: this.sessionHint,
      screen_width: global.screen ? global.screen.width : undefined,
      screen_height: global.screen ? global.screen.height : undefined,
      properties: props
    };
    if (this.userId) event.user_id = this.userId;
    var campaign = utm();
    Object.keys(campaign).forEach(function (key) { event[key] = campaign[key]; });
    Object.keys(fields || {}).forEach(function (key) {
      if (fields[key] !== undefined && fields[key] !== null) event[key] = fields[key];
    });
    if (this.queue.length >= this.maxQueue) this.queue.shift(); // bounded: the oldest goes (a seq gap)
    this.queue.push(event);
    return event;
  };

  Tracker.prototype.track = function (name, properties) {
    return this.event("custom", name, {}, properties);
  };

  Tracker.prototype.identify = function (userId) {
    this.userId = userId;
  };

  Tracker.prototype.pageView = function () {
    var fields = {};
    var nav0 = global.performance && performance.getEntriesByType && performance.getEntriesByType("navigation")[0];
    if (nav0 && nav0.loadEventEnd > 0) fields.page_load_ms = nav0.loadEventEnd - nav0.startTime;
    return this.event("page_view", "page_view", fields);
  };

  Tracker.prototype.engaged = function () {
    var now = Date.now();
    var total = this.engagedMs + (this.visibleSince !== null ? now - this.visibleSince : 0);
    this.engagedMs = 0;
    this.visibleSince = this.visibleSince !== null ? now : null;
    return Math.max(0, Math.round(total));
  };

  Tracker.prototype.heartbeat = function () {
    if (doc.visibilityState !== "visible") return null;
    return this.event("heartbeat", "heartbeat", { engagement_time_ms: this.engaged() });
  };

  Tracker.prototype.start = function (options) {
    var self = this;
    doc.addEventListener("click", function (e) {
      self.event("click", "click", {}, describe(e.target && e.target.closest ? e.target.closest("a,button,[data-track]") || e.target : e.target));
    }, true);
    global.addEventListener("error", function (e) {
      var error = e.error;
      self.event("error", "error", {
        error_type: (error && error.name) || "Error",
        error_message: String((error && error.message) || e.message || "").slice(0, 4000)
      }, { source: e.filename, line: e.lineno });
    });
    global.addEventListener("unhandledrejection", function (e) {
      var reason = e.reason;
      self.event("error", "error", {
        error_type: (reason && reason.name) || "UnhandledRejection",
        error_message: String((reason && reason.message) || reason || "").slice(0, 4000)
      }, { unhandled_rejection: "true" });
    });
    var vitals = options.webVitals || global.webVitals;
    if (vitals) {
      var field = { LCP: "lcp_ms", INP: "inp_ms", CLS: "cls" };
      var report = function (metric) {
        var fields = {};
        fields[field[metric.name]] = metric.value;
        self.event("web_vital", "web_vital", fields, { metric_id: metric.id, rating: metric.rating });
      };
      var reportAll = { reportAllChanges: !!options.reportAllVitalChanges };
      if (vitals.onLCP) vitals.onLCP(report, reportAll);
      if (vitals.onINP) vitals.onINP(report, reportAll);
      if (vitals.onCLS) vitals.onCLS(report, reportAll);
    }
    doc.addEventListener("visibilitychange", function () {
      if (doc.visibilityState === "hidden") {
        if (self.visibleSince !== null) self.engagedMs += Date.now() - self.visibleSince;
        self.visibleSince = null;
        self.beacon();
      } else {
        self.visibleSince = Date.now();
      }
    });
    global.addEventListener("pagehide", function () { self.beacon(); });
    this.flushTimer = global.setInterval(function () { self.flush(); }, this.flushMs);
    this.heartbeatTimer = global.setInterval(function () { self.heartbeat(); }, this.heartbeatMs);
    if (options.pageView !== false) this.pageView();
  };

  Tracker.prototype.backoff = function (response) {
    this.failures += 1;
    // Retry-After (seconds) when the collector sends it, else 1 s, 2 s, 4 s, … up to maxBackoffMs.
    var wait = Math.min(this.maxBackoffMs, 1000 * Math.pow(2, this.failures - 1));
    var header = response && response.headers && response.headers.get("Retry-After");
    if (header && /^\d+$/.test(header)) wait = 1000 * parseInt(header, 10);
    this.retryAt = Date.now() + wait;
  };

  /* One batch in flight at a time; a failed batch goes back to the head of the queue. */
  Tracker.prototype.flush = function () {
    var self = this;
    if (this.inFlight || !this.queue.length || Date.now() < this.retryAt) return this.inFlight;
    var batch = this.queue.splice(0, 500);
    this.inFlight = global.fetch(this.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + this.writeKey },
      body: JSON.stringify(batch),
      keepalive: false
    }).then(function (response) {
      if (response.ok) {
        self.failures = 0;
        self.retryAt = 0;
        self.sent += batch.length;
      } else if (response.status === 429 || response.status >= 500) {
        self.queue = batch.concat(self.queue);
        self.backoff(response);
      } // other 4xx: the batch can never be accepted; dropped (the collector counts it)
    }, function () {
      self.queue = batch.concat(self.queue);
      self.backoff(null);
    }).then(function () { self.inFlight = null; });
    return this.inFlight;
  };

  /* Page hide: hand what is queued to the browser (it sends it after the page is gone). */
  Tracker.prototype.beacon = function () {
    if (!this.queue.length || !nav.sendBeacon) return false;
    var url = this.endpoint + "?write_key=" + encodeURIComponent(this.writeKey);
    var batch = this.queue.splice(0, 500);
    var ok = nav.sendBeacon(url, new Blob([JSON.stringify(batch)], { type: "text/plain" }));
    if (!ok) this.queue = batch.concat(this.queue);
    return ok;
  };

  var api = {
    version: VERSION,
    tracker: null,
    init: function (options) {
      api.tracker = new Tracker(options);
      return api.tracker;
    },
    track: function (name, properties) { return api.tracker && api.tracker.track(name, properties); },
    identify: function (userId) { return api.tracker && api.tracker.identify(userId); },
    flush: function () { return api.tracker && api.tracker.flush(); }
  };
  global.uxstream = api;
})(window);
