// skiff's dashboard: live updates without reloading the page, and followed logs.
// Every page works without this script; it only keeps the parts marked `data-live` fresh
// (it fetches the same page again and swaps them in) and appends the lines of a followed
// log (server-sent events) to the element marked `data-follow`.
(function () {
  "use strict";
  var EVERY_MS = 2000;
  var MAX_LINES = 500;
  var busy = false;

  function refresh() {
    var live = document.querySelectorAll("[data-live][id]");
    if (live.length === 0 || document.hidden || busy) return;
    busy = true;
    fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (el) {
          var next = fresh.getElementById(el.id);
          if (next && next.innerHTML !== el.innerHTML) el.innerHTML = next.innerHTML;
        });
      })
      .catch(function () { /* the daemon may be restarting: the next round tries again */ })
      .then(function () { busy = false; });
  }

  function append(pre, text, kind) {
    var line = document.createElement("div");
    line.textContent = text; // never HTML: this is what functions wrote
    if (kind) line.className = kind;
    pre.appendChild(line);
    while (pre.childNodes.length > MAX_LINES) pre.removeChild(pre.firstChild);
    pre.scrollTop = pre.scrollHeight;
  }

  function follow(pre) {
    var source = new EventSource(pre.getAttribute("data-follow"));
    source.addEventListener("line", function (event) {
      var l = JSON.parse(event.data);
      var origin = l.call ? "call " + l.call.slice(-8) : "instance " + l.instance + " " + l.stream;
      append(pre, l.at.slice(11, 23) + " " + origin + "  " + l.line);
    });
    source.addEventListener("lagged", function (event) {
      append(pre, "[" + JSON.parse(event.data).skipped + " lines skipped]", "lagged");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-follow]").forEach(follow);
    setInterval(refresh, EVERY_MS);
  });
})();
