// Mailer console: live values. An element with data-poll="URL" is refreshed every 2 s
// from that JSON endpoint (every 15th time with ?chart=1): each descendant with
// data-live="key" gets that key's value as its text (never as HTML), and each with
// data-live-attr="attribute:key" gets it as that attribute. Written for this project
// (MIT, as Mailer).
(function () {
  "use strict";
  var PERIOD_MS = 2000;
  var CHART_EVERY = 15;

  function apply(section, data) {
    section.querySelectorAll("[data-live]").forEach(function (el) {
      var key = el.getAttribute("data-live");
      if (Object.prototype.hasOwnProperty.call(data, key)) {
        el.textContent = data[key] === null ? "\u2013" : String(data[key]);
      }
    });
    section.querySelectorAll("[data-live-attr]").forEach(function (el) {
      var spec = el.getAttribute("data-live-attr").split(":");
      if (Object.prototype.hasOwnProperty.call(data, spec[1])) {
        el.setAttribute(spec[0], String(data[spec[1]]));
      }
    });
  }

  function refresh(section, withChart) {
    var url = section.getAttribute("data-poll") + (withChart ? "?chart=1" : "");
    fetch(url, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { apply(section, data); } })
      .catch(function () { /* the next poll tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(function (section) {
      var n = 0;
      setInterval(function () {
        n += 1;
        refresh(section, n % CHART_EVERY === 0);
      }, PERIOD_MS);
    });
  });
})();
