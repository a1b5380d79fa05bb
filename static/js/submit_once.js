// Disable a form's submit buttons once it is submitted, so a double click posts once.
// The server is the real guard (a campaign launches once); this only avoids the noise.
(function () {
  "use strict";
  document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelectorAll("button[type='submit']").forEach(function (button) {
        setTimeout(function () { button.disabled = true; }, 0);
      });
    });
  });
})();
