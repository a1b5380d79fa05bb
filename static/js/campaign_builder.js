// Campaign builder: show only the delivery fields of the chosen strategy, the
// transparent-message fields only for NotifyType "transparent", and only as many
// extended-parameter rows as are in use plus one. No inline scripts (CSP).
(function () {
  "use strict";
  var form = document.getElementById("campaign-form");
  if (!form) { return; }

  function checked(name) {
    var input = form.querySelector("input[name='" + name + "']:checked");
    return input ? input.value : "";
  }

  function syncStrategy() {
    var strategy = checked("strategy_type") || "0";
    var circle = (form.querySelector("[name='loop_circle_type']") || {}).value || "";
    form.querySelectorAll("[data-strategy]").forEach(function (el) {
      el.hidden = el.getAttribute("data-strategy").split(" ").indexOf(strategy) < 0;
    });
    form.querySelectorAll("[data-circle]").forEach(function (el) {
      el.hidden = el.getAttribute("data-circle") !== circle;
    });
    // the transparent-message fields belong to NotifyType "transparent" only; a field
    // with an error stays in view so the error can be read and fixed
    var notify = (form.querySelector("[name='notify_type']") || {}).value || "";
    form.querySelectorAll("[data-notify]").forEach(function (el) {
      el.hidden = el.getAttribute("data-notify") !== notify && !el.querySelector(".is-invalid");
    });
  }

  function syncRows(revealOne) {
    var rows = Array.prototype.slice.call(form.querySelectorAll(".extended-row"));
    var shownEmpty = 0;
    rows.forEach(function (row) {
      var used = Array.prototype.some.call(row.querySelectorAll("input"), function (i) {
        return i.value !== "";
      }) || row.querySelector(".is-invalid");
      if (used) { row.hidden = false; return; }
      if (!row.hidden && row.dataset.revealed) { return; }
      row.hidden = shownEmpty >= 1;
      if (!row.hidden) { shownEmpty += 1; }
    });
    if (revealOne) {
      var next = rows.filter(function (r) { return r.hidden; })[0];
      if (next) {
        next.hidden = false;
        next.dataset.revealed = "1";
        next.querySelector("input").focus();
      }
    }
    // Every row shown: say that this is the limit rather than do nothing on a click.
    var full = !rows.some(function (r) { return r.hidden; });
    var note = document.getElementById("extended-full");
    if (note) { note.hidden = !full; }
    if (add) { add.disabled = full; }
  }

  var add = document.getElementById("add-extended-row");
  form.addEventListener("change", syncStrategy);
  if (add) { add.addEventListener("click", function () { syncRows(true); }); }
  syncStrategy();
  syncRows(false);
})();
