// django-rq 4.2's job lists call the jQuery plugin $(...).actions() that Django's admin
// dropped (admin/js/actions.js now wires the select-all boxes itself on load): a no-op
// plugin keeps the rest of those pages' scripts running.
(function () {
  "use strict";
  if (window.django && window.django.jQuery && !window.django.jQuery.fn.actions) {
    window.django.jQuery.fn.actions = function () { return this; };
  }
})();
