// The portal's own behaviour: charts, confirmations, copy, uploads with progress, the streamed playground.
// No inline scripts anywhere (the Content-Security-Policy forbids them): every page hooks in from here.
(function () {
  "use strict";

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // --- overview charts (uPlot) ---------------------------------------------------------------------
  var COLORS = { replies: "#2b6cb0", cached: "#2f855a", failed: "#c53030", cost: "#6b46c1" };

  function charts() {
    var data = document.getElementById("chart-data");
    if (!data || !window.uPlot) { return; }
    var parsed = JSON.parse(data.textContent);
    var xs = parsed.days.map(function (d) { return Date.parse(d + "T00:00:00Z") / 1000; });
    document.querySelectorAll(".chart[data-series]").forEach(function (el) {
      var names = el.getAttribute("data-series").split(",");
      var series = [{}].concat(names.map(function (n) {
        return { label: n, stroke: COLORS[n] || "#333", width: 2, fill: n === "cost" ? "rgba(107,70,193,0.1)" : undefined };
      }));
      var width = Math.max(300, el.clientWidth || 600);
      new window.uPlot({ width: width, height: 220, series: series, scales: { x: { time: true } },
                         axes: [{}, { size: 60 }] },
                       [xs].concat(names.map(function (n) { return parsed[n]; })), el);
    });
  }

  // --- confirmations and copy ----------------------------------------------------------------------
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) { return; }
    var field = document.querySelector(button.getAttribute("data-copy"));
    field.select();
    var done = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        document.execCommand("copy"); done();
      });
    } else { document.execCommand("copy"); done(); }
  });

  // --- uploads: drag and drop, one request per file, with progress ---------------------------------
  function uploads() {
    var form = document.getElementById("upload-form");
    if (!form) { return; }
    var input = document.getElementById("upload-input");
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var url = form.getAttribute("data-upload-url");

    function send(files, index) {
      if (index >= files.length) { bar.hidden = true; input.value = ""; return; }
      var file = files[index];
      var body = new FormData();
      body.append("file", file);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRF-Token", csrf());
      bar.hidden = false; bar.value = 0;
      xhr.upload.onprogress = function (e) { if (e.lengthComputable) { bar.value = Math.round(e.loaded * 100 / e.total); } };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          status.textContent = "Uploaded " + file.name + "; indexing.";
        } else {
          var detail = xhr.responseText;
          try { detail = JSON.parse(xhr.responseText).detail; } catch (e) { /* plain text */ }
          status.textContent = "Upload of " + file.name + " failed: " + (typeof detail === "string" ? detail : JSON.stringify(detail));
        }
        if (window.htmx) { window.htmx.trigger(document.body, "documents-changed"); }
        send(files, index + 1);
      };
      xhr.onerror = function () { status.textContent = "Upload of " + file.name + " failed: network error"; send(files, index + 1); };
      status.textContent = "Uploading " + file.name + "…";
      xhr.send(body);
    }

    input.addEventListener("change", function () { send(input.files, 0); });
    form.addEventListener("dragover", function (e) { e.preventDefault(); form.classList.add("over"); });
    form.addEventListener("dragleave", function () { form.classList.remove("over"); });
    form.addEventListener("drop", function (e) {
      e.preventDefault(); form.classList.remove("over");
      send(e.dataTransfer.files, 0);
    });
    form.addEventListener("submit", function (e) { e.preventDefault(); });
  }

  // --- the playground: POST, then read the server-sent events as they stream -----------------------
  function playground() {
    var box = document.getElementById("playground");
    if (!box) { return; }
    var agentId = box.getAttribute("data-agent-id");
    var form = document.getElementById("pg-form");
    var thread = document.getElementById("pg-thread");
    var error = document.getElementById("pg-error");
    var conversationId = uuid4();

    document.getElementById("pg-new").addEventListener("click", function () {
      conversationId = uuid4(); thread.innerHTML = "";
    });

    function bubble(role, text) {
      var li = document.createElement("li");
      li.className = "msg " + role;
      var div = document.createElement("div");
      div.className = "bubble"; div.setAttribute("dir", "auto"); div.textContent = text;
      li.appendChild(div); thread.appendChild(li);
      return li;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var field = document.getElementById("pg-message");
      var message = field.value.trim();
      if (!message) { return; }
      error.hidden = true;
      bubble("customer", message);
      var reply = bubble("assistant", "");
      reply.classList.add("streaming");
      var text = reply.querySelector(".bubble");
      var steps = document.createElement("p");
      steps.className = "muted steps"; reply.appendChild(steps);
      field.value = "";
      var send = document.getElementById("pg-send");
      send.disabled = true;
      var body = new URLSearchParams({ message: message, conversation_id: conversationId, customer_id: "playground" });
      fetch("/portal/agents/" + agentId + "/playground", {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf(), "Accept": "text/event-stream" }
      }).then(function (response) {
        if (!response.ok || !response.body) {
          return response.text().then(function (t) {
            var detail = t;
            try { detail = JSON.parse(t).detail; } catch (e) { /* not JSON */ }
            throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
          });
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function handle(event) {
          if (event.event === "delta") { text.textContent += event.text; }
          else if (event.event === "step") { steps.textContent += (steps.textContent ? " · " : "") + event.name + " " + event.ms.toFixed(1) + " ms"; }
          else if (event.event === "tool") { steps.textContent += " · tool " + event.name + " " + event.outcome; }
          else if (event.event === "done") {
            reply.classList.remove("streaming");
            text.textContent = event.reply;
            if (event.message_id) {
              var trace = document.createElement("div");
              trace.className = "trace-slot";
              reply.appendChild(trace);
              window.htmx.ajax("GET", "/portal/conversations/" + conversationId + "/replies/" + event.message_id + "/trace",
                               { target: trace, swap: "innerHTML" });
            }
          } else if (event.event === "error") {
            reply.classList.remove("streaming");
            error.textContent = "The reply failed: " + event.message; error.hidden = false;
          }
        }
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { return; }
            buffer += decoder.decode(chunk.value, { stream: true });
            var parts = buffer.split("\n\n");
            buffer = parts.pop();
            parts.forEach(function (part) {
              part.split("\n").forEach(function (line) {
                if (line.indexOf("data: ") === 0) { handle(JSON.parse(line.slice(6))); }
              });
            });
            return pump();
          });
        }
        return pump();
      }).catch(function (e) {
        error.textContent = "The reply failed: " + e.message; error.hidden = false;
      }).finally(function () { send.disabled = false; });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { charts(); uploads(); playground(); });
})();
