// On every page (a static file: the CSP allows no inline script).
// 1. After a failed submit the error summary takes focus; its links focus their field.
// 2. Live regions, one pattern for every fragment that htmx swaps in: the fragment says
//    data-live-key (what it is about), data-live-summary (a short sentence) and, if it
//    changes state, data-live-state; its text is written into the page's one stable
//    role="status" element (#live-status), so a screen reader announces the sentence
//    instead of nothing or the whole fragment. Content present when the page loaded is
//    not announced; a fragment swapped in is, when its sentence is new or changed.
//    data-live-throttle="10" announces a fragment at most every 10 s unless its state
//    changed (progress is polled every second; completion is announced at once).
// 3. Focus that was inside swapped content does not fall to <body>.
(function () {
  "use strict";

  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("[data-focus-field]");
      var field = link && document.getElementById(link.getAttribute("data-focus-field"));
      if (!field) { return; }
      event.preventDefault();
      var label = document.querySelector("label[for='" + field.id + "']");
      (label || field).scrollIntoView({ block: "center" });
      field.focus({ preventScroll: true });
    });
  }

  var status = document.getElementById("live-status");
  var seen = {};

  function say(text) {
    if (status.textContent === text) {
      // the same words again (another fragment said them): clear first so it is heard
      status.textContent = "";
      setTimeout(function () { status.textContent = text; }, 100);
    } else {
      status.textContent = text;
    }
  }

  function consider(el, swapped) {
    var key = el.getAttribute("data-live-key");
    var text = el.getAttribute("data-live-summary") || "";
    var state = el.getAttribute("data-live-state") || "";
    var last = seen[key];
    var now = Date.now();
    if (!swapped) {
      seen[key] = { text: text, state: state, at: 0 };
      return;
    }
    if (last) {
      if (text === last.text || !text) { return; }
      var throttle = (parseInt(el.getAttribute("data-live-throttle"), 10) || 0) * 1000;
      if (state === last.state && throttle && now - last.at < throttle) { return; }
    } else if (!text) {
      return;
    }
    seen[key] = { text: text, state: state, at: now };
    say(text);
  }

  function scan(root, swapped) {
    if (!status || !root || !root.querySelectorAll) { return; }
    if (root.hasAttribute && root.hasAttribute("data-live-key")) { consider(root, swapped); }
    root.querySelectorAll("[data-live-key]").forEach(function (el) { consider(el, swapped); });
  }

  scan(document.body, false);
  document.addEventListener("htmx:load", function (event) { scan(event.detail.elt, true); });

  var focusWasInside = false;
  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    focusWasInside = Boolean(
      active && active !== document.body && event.detail.target &&
      event.detail.target.contains(active)
    );
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!focusWasInside) { return; }
    focusWasInside = false;
    var active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) { return; }
    var fallback = document.querySelector("[data-focus-fallback]") || document.getElementById("main");
    if (fallback) { fallback.focus({ preventScroll: true }); }
  });
})();
