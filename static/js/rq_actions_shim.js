// django-rq 4.2's job lists were written for the old admin: they call the jQuery plugin
// $(...).actions() that Django's admin dropped, and lack the ".action-counter" element
// that Django's admin/js/actions.js (which now wires the select boxes itself) updates.
// This gives them a no-op plugin, the counter and (their pages load no JavaScript
// catalogue) English gettext / ngettext / interpolate, so their scripts run without errors.
(function () {
  "use strict";
  if (typeof window.gettext !== "function") {
    window.gettext = function (text) { return text; };
  }
  if (typeof window.ngettext !== "function") {
    window.ngettext = function (one, many, n) { return n === 1 ? one : many; };
  }
  if (typeof window.interpolate !== "function") {
    window.interpolate = function (text, values, named) {
      if (named) {
        return text.replace(/%\(\w+\)s/g, function (m) { return String(values[m.slice(2, -2)]); });
      }
      return text.replace(/%s/g, function () { return String(values.shift()); });
    };
  }
  if (window.django && window.django.jQuery && !window.django.jQuery.fn.actions) {
    window.django.jQuery.fn.actions = function () { return this; };
  }
  document.addEventListener("DOMContentLoaded", function () {
    var actions = document.querySelector("#changelist-form div.actions");
    if (!actions || actions.querySelector(".action-counter")) {
      return;
    }
    var counter = document.createElement("span");
    counter.className = "action-counter";
    counter.dataset.actionsIcnt = String(document.querySelectorAll("tr input.action-select").length);
    actions.appendChild(counter);
  });
})();
