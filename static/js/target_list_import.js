// Sizes import progress bars from their data-progress-percent. Set from a static script
// because inline style attributes would need 'unsafe-inline' in the Content-Security-Policy.
(function () {
  "use strict";
  function size(root) {
    if (!root || !root.querySelectorAll) return;
    root.querySelectorAll("[data-progress-percent]").forEach(function (bar) {
      var percent = parseInt(bar.getAttribute("data-progress-percent"), 10) || 0;
      bar.style.width = Math.max(0, Math.min(100, percent)) + "%";
    });
  }
  document.addEventListener("htmx:load", function (event) { size(event.detail.elt); });
  size(document);
})();
