// Mailer console: live counters. An element with data-poll="URL" is refreshed every few
// seconds from that JSON endpoint: each descendant with data-live="key" gets the value
// of that key as its text (never as HTML). Written for this project (MIT, as Mailer).
(function () {
  "use strict";
  var PERIOD_MS = 2000;

  function refresh(section) {
    fetch(section.getAttribute("data-poll"), {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        section.querySelectorAll("[data-live]").forEach(function (el) {
          var key = el.getAttribute("data-live");
          if (Object.prototype.hasOwnProperty.call(data, key)) {
            el.textContent = String(data[key]);
          }
        });
      })
      .catch(function () { /* the next poll tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(function (section) {
      setInterval(function () { refresh(section); }, PERIOD_MS);
    });
  });
})();
