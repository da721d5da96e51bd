/* livekit-live.js: makes a book page's cells live when `livekit serve` serves it.
 *
 * Every code cell of the built book carries a hidden
 * <span class="livekit-cell-ref" data-livekit-page=... data-livekit-cell=...>
 * (added at build time by livekit.kernel._sphinx).  Opened from disk or from
 * a plain web server, the page keeps its build-time outputs and says, in one
 * line, how to make it live.  Served by `livekit serve` (same origin, which
 * answers /_livekit/status), it offers "Run live": the server runs the
 * page's own cells from the book's sources in a kernel for this page, and
 * their outputs replace the snapshot as they come.  The page never sends
 * code, only which cell to run.
 *
 * The live socket needs, besides the login cookie, the live key that the
 * server gave this origin once, in its answer to the printed address
 * (livekit.kernel._security.exchange_page): cookies ignore ports, so every
 * other server on 127.0.0.1 receives the cookie, but localStorage is kept
 * per origin, port included.
 *
 * Widgets (a live chart, a text input) arrive as Jupyter widget comms; a
 * small model with anywidget's interface (get, set, on, off, send,
 * save_changes) lets their own front-end module draw them, as in Jupyter.
 *
 * A classic script (not a module), like the book's others, so that pages
 * opened from file:// load it. */
(function () {
  "use strict";
  if (window.livekitLive) return;

  // Two commands: who built the book with tox has no `livekit` on PATH.
  var HINT_TEXT = "Outputs as built. To make this page live, run ";
  var HINT_COMMAND = "livekit serve";
  var HINT_OR = " in the book's project (";
  var HINT_TOX = "tox -e serve";
  var HINT_AFTER = " if you built it with tox).";
  var WIDGET_VIEW = "application/vnd.jupyter.widget-view+json";
  var ANSI = /\x1b\[[0-9;]*[A-Za-z]/g;
  var KEY_STORAGE = "livekit-live-key";

  var live = {
    page: null,
    state: "static",     // static | ready | connecting | live | closed
    kernel: null,        // starting | idle | busy | dead | restarting
    cells: new Map(),    // cell index -> {el, output, cursor, running}
    models: new Map(),   // comm id -> model
    displays: new Map(), // display id -> output element
    errors: [],
    socket: null,
    // Numbers the browser test and the benchmark read.
    stats: { pushes: 0, points: 0, dropped: 0, latencies: [] }
  };
  window.livekitLive = live;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function addStyle() {
    var style = el("style");
    style.textContent = [
      ".livekit-live-bar{position:sticky;top:var(--pst-header-height,0);z-index:10;display:flex;",
      "gap:.5em;align-items:center;flex-wrap:wrap;padding:.4em .6em;margin:0 0 1em;",
      "border:1px solid var(--pst-color-border,#ccc);border-radius:6px;",
      "background:var(--pst-color-surface,#f7f7f7);font-size:.9em}",
      ".livekit-live-bar button,.livekit-cell-run{font-size:.9em;padding:.1em .7em;cursor:pointer;",
      "border:1px solid var(--pst-color-border,#bbb);border-radius:4px;",
      "background:var(--pst-color-background,#fff);color:var(--pst-color-text-base,inherit)}",
      ".livekit-live-bar button:disabled{opacity:.5;cursor:default}",
      ".livekit-live-status{color:var(--pst-color-text-muted,#555)}",
      ".livekit-live-hint{font-size:.85em;color:var(--pst-color-text-muted,#555);margin:0 0 1em}",
      ".cell.livekit-live-cell{position:relative}",
      ".livekit-cell-run{position:absolute;top:.3em;right:.3em;z-index:2;font-size:.75em;opacity:.7}",
      ".livekit-cell-run:hover,.livekit-cell-run:focus{opacity:1}",
      ".cell.livekit-running>.cell_input{border-left:3px solid var(--pst-color-primary,#0a7)}",
      ".cell.livekit-error>.cell_input{border-left:3px solid var(--pst-color-danger,#c33)}",
      ".livekit-live-output pre{white-space:pre-wrap}",
      ".livekit-live-error pre{color:var(--pst-color-danger,#b00)}"
    ].join("");
    document.head.appendChild(style);
  }

  // -- Finding the page's cells ---------------------------------------------

  function findCells() {
    var refs = document.querySelectorAll(".livekit-cell-ref");
    refs.forEach(function (ref) {
      var index = parseInt(ref.getAttribute("data-livekit-cell"), 10);
      var cell = ref.closest(".cell") || ref.parentNode;
      if (!live.page) live.page = ref.getAttribute("data-livekit-page");
      var output = cell.querySelector(":scope > .cell_output");
      if (!output) {
        output = el("div", "cell_output docutils container");
        cell.appendChild(output);
      }
      live.cells.set(index, { el: cell, output: output, cursor: 0, running: false, fresh: false });
    });
    return refs.length > 0;
  }

  function firstCell() {
    var first = null;
    live.cells.forEach(function (cell) { if (!first) first = cell.el; });
    return first;
  }

  function articleTop() {
    var article = document.querySelector("article.bd-article") ||
      document.querySelector("main article") || document.querySelector("[role=main]");
    var first = firstCell();
    if (article) {
      var heading = article.querySelector("section h1") || article.querySelector("h1");
      if (heading && heading.parentNode) return { parent: heading.parentNode, before: heading.nextSibling };
      return { parent: article, before: article.firstChild };
    }
    return { parent: first.parentNode, before: first };
  }

  // -- Without a kernel: the snapshot and one line ---------------------------

  function showHint() {
    var hint = el("p", "livekit-live-hint");
    hint.appendChild(document.createTextNode(HINT_TEXT));
    hint.appendChild(el("code", null, HINT_COMMAND));
    hint.appendChild(document.createTextNode(HINT_OR));
    hint.appendChild(el("code", null, HINT_TOX));
    hint.appendChild(document.createTextNode(HINT_AFTER));
    var place = articleTop();
    place.parent.insertBefore(hint, place.before);
    live.state = "static";
  }

  // -- With a kernel: the bar and the buttons --------------------------------

  var bar = {};

  function showBar() {
    var node = el("div", "livekit-live-bar");
    node.setAttribute("role", "toolbar");
    node.setAttribute("aria-label", "Run this page live");
    bar.run = el("button", "livekit-live-run", "\u25B6 Run live");
    bar.run.type = "button";
    bar.run.title = "Run this page's cells in a local kernel";
    bar.run.addEventListener("click", function () { runCell(null); });
    bar.stop = el("button", "livekit-live-stop", "\u25A0 Stop");
    bar.stop.type = "button";
    bar.stop.title = "Interrupt the running cell";
    bar.stop.addEventListener("click", function () { send({ op: "interrupt" }); });
    bar.restart = el("button", "livekit-live-restart", "\u21BB Restart");
    bar.restart.type = "button";
    bar.restart.title = "Restart this page's kernel";
    bar.restart.addEventListener("click", function () { send({ op: "restart" }); });
    bar.status = el("span", "livekit-live-status", "A local kernel is ready.");
    bar.status.setAttribute("role", "status");
    node.append(bar.run, bar.stop, bar.restart, bar.status);
    var place = articleTop();
    place.parent.insertBefore(node, place.before);
    live.cells.forEach(function (cell, index) {
      var button = el("button", "livekit-cell-run", "\u25B6 Run");
      button.type = "button";
      button.title = "Run this cell (and the cells before it, the first time)";
      button.addEventListener("click", function () { runCell(index); });
      cell.el.classList.add("livekit-live-cell");
      cell.el.insertBefore(button, cell.el.firstChild);
    });
    live.state = "ready";
    updateBar();
  }

  function updateBar() {
    if (!bar.status) return;
    var words = {
      starting: "Starting this page's kernel\u2026",
      idle: "Live: the kernel is idle.",
      busy: "Live: running\u2026",
      dead: "The kernel died. Restart it to go on.",
      restarting: "Restarting the kernel\u2026"
    };
    if (live.state === "refused") {
      bar.status.textContent = "No live socket: is livekit serve running? " +
        "(Another browser needs the address it printed.)";
    } else if (live.state === "closed") bar.status.textContent = "Disconnected from livekit serve.";
    else if (live.kernel) bar.status.textContent = words[live.kernel] || live.kernel;
    bar.stop.disabled = live.kernel !== "busy";
    bar.restart.disabled = live.state !== "live";
    bar.run.textContent = live.state === "live" ? "\u25B6 Run all" : "\u25B6 Run live";
  }

  // -- The socket --------------------------------------------------------------

  var queued = [];

  function liveKey() {
    try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (err) { return ""; }
  }

  function connect() {
    if (live.socket) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + "/_livekit/live?page=" + encodeURIComponent(live.page) +
      "&key=" + encodeURIComponent(liveKey());
    var socket = new WebSocket(url);
    var opened = false;
    live.socket = socket;
    live.state = "connecting";
    socket.onopen = function () {
      opened = true;
      live.state = "live";
      queued.splice(0).forEach(function (text) { socket.send(text); });
      updateBar();
    };
    socket.onmessage = function (event) {
      var message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      try { receive(message); } catch (err) { console.error("livekit live:", err, message); }
    };
    socket.onclose = function () {
      live.socket = null;
      // Closed before it opened: the server is gone, or it refused this
      // browser (no live key here).
      live.state = opened ? "closed" : "refused";
      live.kernel = null;
      live.models.forEach(function (model) { model._close(); });
      live.models.clear();
      updateBar();
    };
  }

  function send(message) {
    var text = JSON.stringify(message);
    if (live.socket && live.socket.readyState === WebSocket.OPEN) live.socket.send(text);
    else {
      queued.push(text);
      connect();
    }
  }

  // Round trip to the server and back, in ms (the benchmark's baseline).
  var pongs = [];
  live.ping = function () {
    var started = performance.now();
    return new Promise(function (resolve) {
      pongs.push(function () { resolve(performance.now() - started); });
      send({ op: "ping" });
    });
  };

  function runCell(index) {
    send(index === null ? { op: "run" } : { op: "run", cell: index });
  }

  function receive(message) {
    var cell = typeof message.cell === "number" ? live.cells.get(message.cell) : null;
    switch (message.type) {
      case "status":
        live.kernel = message.state;
        updateBar();
        break;
      case "cell_start":
        if (cell) startCell(cell);
        break;
      case "output":
        if (cell) addOutput(cell, message.output);
        else if (message.output.output_type === "update_display_data") addOutput(null, message.output);
        break;
      case "clear_output":
        if (cell) clearCell(cell);
        break;
      case "cell_done":
        if (cell) endCell(cell, message.status);
        break;
      case "comm_open":
        openComm(message);
        break;
      case "comm_msg":
        var model = live.models.get(message.comm_id);
        if (model) model._receive(message.data);
        break;
      case "comm_close":
        var closing = live.models.get(message.comm_id);
        if (closing) closing._close();
        live.models.delete(message.comm_id);
        break;
      case "pong":
        var resolve = pongs.shift();
        if (resolve) resolve();
        break;
      case "dropped":
        live.stats.dropped += message.count;
        break;
      case "error":
        live.errors.push(message);
        if (bar.status) bar.status.textContent = "livekit serve: " + message.message;
        break;
      default:
        break;
    }
  }

  // -- Outputs -----------------------------------------------------------------
  // A re-run keeps what it shows again in place (an input keeps its focus
  // while the cells that read it run again), and replaces the rest.

  function startCell(cell) {
    cell.cursor = 0;
    cell.running = true;
    cell.fresh = true;
    cell.el.classList.add("livekit-running");
    cell.el.classList.remove("livekit-error");
  }

  function endCell(cell, status) {
    cell.running = false;
    cell.el.classList.remove("livekit-running");
    if (status === "error") cell.el.classList.add("livekit-error");
    if (status !== "cancelled") trimCell(cell);
  }

  function trimCell(cell) {
    var children = Array.prototype.slice.call(cell.output.children);
    children.slice(cell.cursor).forEach(removeOutput);
  }

  function clearCell(cell) {
    cell.cursor = 0;
    trimCell(cell);
  }

  function removeOutput(node) {
    node.querySelectorAll("[data-livekit-view]").forEach(function (view) {
      if (typeof view._livekitCleanup === "function") {
        try { view._livekitCleanup(); } catch (err) { console.error(err); }
      }
    });
    node.remove();
  }

  function widgetId(output) {
    var data = output.data || {};
    return data[WIDGET_VIEW] ? data[WIDGET_VIEW].model_id : null;
  }

  function addOutput(cell, output) {
    if (output.output_type === "update_display_data") {
      var id = output.transient && output.transient.display_id;
      var old = id && live.displays.get(id);
      if (old && old.parentNode) {
        var fresh = renderOutput(output);
        old.parentNode.replaceChild(fresh, old);
        live.displays.set(id, fresh);
      }
      return;
    }
    var children = cell.output.children;
    var current = children[cell.cursor];
    var model = widgetId(output);
    if (current && model && current.getAttribute("data-livekit-model") === model) {
      cell.cursor += 1; // the same widget again: keep its view as it is
      return;
    }
    var previous = children[cell.cursor - 1];
    if (output.output_type === "stream" && previous && previous.getAttribute("data-livekit-stream") === output.name) {
      previous.querySelector("pre").textContent += output.text.replace(ANSI, "");
      return;
    }
    var node = renderOutput(output);
    if (current) {
      cell.output.insertBefore(node, current);
      removeOutput(current);
    } else {
      cell.output.appendChild(node);
    }
    cell.cursor += 1;
    var display = output.transient && output.transient.display_id;
    if (display) live.displays.set(display, node);
  }

  function renderOutput(output) {
    var box = el("div", "output livekit-live-output");
    if (output.output_type === "stream") {
      box.setAttribute("data-livekit-stream", output.name);
      box.classList.add("stream");
      box.appendChild(el("pre", null, output.text.replace(ANSI, "")));
      return box;
    }
    if (output.output_type === "error") {
      box.classList.add("livekit-live-error");
      var lines = (output.traceback || [output.ename + ": " + output.evalue]).join("\n");
      box.appendChild(el("pre", null, lines.replace(ANSI, "")));
      return box;
    }
    var data = output.data || {};
    if (data[WIDGET_VIEW]) {
      var id = data[WIDGET_VIEW].model_id;
      box.setAttribute("data-livekit-model", id);
      var view = el("div", "livekit-live-widget");
      view.setAttribute("data-livekit-view", id);
      box.appendChild(view);
      showWidget(id, view);
      return box;
    }
    // Each kind of output on the page (livekit-page.js) draws its own types.
    var kinds = window.livekitPage ? window.livekitPage.kinds : [];
    for (var k = 0; k < kinds.length; k++) {
      for (var m = 0; m < kinds[k].mimeTypes.length; m++) {
        var value = data[kinds[k].mimeTypes[m]];
        if (value !== undefined) {
          box.appendChild(kinds[k].element(value));
          return box;
        }
      }
    }
    if (data["text/html"] !== undefined) {
      var html = el("div", "livekit-live-html");
      html.innerHTML = data["text/html"];
      // The book's own cells made it, so its scripts run, as Jupyter runs
      // them in a trusted notebook (innerHTML alone would not).
      html.querySelectorAll("script").forEach(function (old) {
        var script = document.createElement("script");
        Array.prototype.forEach.call(old.attributes, function (a) { script.setAttribute(a.name, a.value); });
        script.textContent = old.textContent;
        old.replaceWith(script);
      });
      box.appendChild(html);
    } else if (data["image/svg+xml"] !== undefined) {
      var svg = el("div");
      svg.innerHTML = data["image/svg+xml"];
      box.appendChild(svg);
    } else if (data["image/png"] !== undefined) {
      var img = el("img");
      img.src = "data:image/png;base64," + data["image/png"];
      box.appendChild(img);
    } else if (data["text/plain"] !== undefined) {
      box.appendChild(el("pre", null, String(data["text/plain"]).replace(ANSI, "")));
    }
    return box;
  }

  // -- Widgets: Jupyter widget comms with anywidget's model interface ----------

  function Model(commId, state) {
    this.commId = commId;
    this.state = state || {};
    this.listeners = new Map();
    this.closed = false;
  }
  Model.prototype.get = function (key) { return this.state[key]; };
  Model.prototype.set = function (key, value) {
    this.state[key] = value;
    this._changed = this._changed || {};
    this._changed[key] = value;
    this._emit("change:" + key, value);
  };
  Model.prototype.save_changes = function () {
    if (!this._changed || this.closed) return;
    var changed = this._changed;
    this._changed = null;
    send({ op: "comm", comm_id: this.commId, data: { method: "update", state: changed, buffer_paths: [] } });
  };
  Model.prototype.send = function (content) {
    if (this.closed) return;
    send({ op: "comm", comm_id: this.commId, data: { method: "custom", content: content } });
  };
  Model.prototype.on = function (event, callback) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(callback);
  };
  Model.prototype.off = function (event, callback) {
    if (!event) { this.listeners.clear(); return; }
    var set = this.listeners.get(event);
    if (!set) return;
    if (callback) set.delete(callback); else set.clear();
  };
  Model.prototype._emit = function (event) {
    var args = Array.prototype.slice.call(arguments, 1);
    var set = this.listeners.get(event);
    if (set) Array.from(set).forEach(function (callback) { callback.apply(null, args); });
  };
  Model.prototype._receive = function (data) {
    if (data.method === "custom") {
      var content = data.content;
      if (content && content.type === "push") notePush(content);
      this._emit("msg:custom", content, []);
    } else if (data.method === "update" || data.method === "echo_update") {
      var state = data.state || {};
      for (var key in state) {
        this.state[key] = state[key];
        this._emit("change:" + key, state[key]);
      }
    }
  };
  Model.prototype._close = function () {
    this.closed = true;
    this.listeners.clear();
  };

  function notePush(content) {
    var rows = content.rows || [];
    var stats = live.stats;
    stats.pushes += 1;
    stats.points += rows.length;
    if (rows.length) stats.newest = rows[rows.length - 1];
    var newest = 0;
    rows.forEach(function (row) { if (typeof row.t_ms === "number" && row.t_ms > newest) newest = row.t_ms; });
    if (newest) {
      stats.latencies.push(Date.now() - newest);
      if (stats.latencies.length > 1000) stats.latencies.shift();
    }
  }

  function openComm(message) {
    if (message.target_name !== "jupyter.widget") return;
    var data = message.data || {};
    var model = new Model(message.comm_id, data.state);
    live.models.set(message.comm_id, model);
    var waiting = pendingViews.get(message.comm_id);
    if (waiting) {
      pendingViews.delete(message.comm_id);
      waiting.forEach(function (view) { showWidget(message.comm_id, view); });
    }
  }

  var pendingViews = new Map();
  var modules = new Map();

  function loadModule(source) {
    if (!modules.has(source)) {
      var isUrl = /^(https?:)?\/\/|^\//.test(source) && source.indexOf("\n") < 0;
      var url = isUrl ? source : URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
      modules.set(source, import(url));
    }
    return modules.get(source);
  }

  function showWidget(id, view) {
    var model = live.models.get(id);
    if (!model) {
      if (!pendingViews.has(id)) pendingViews.set(id, []);
      pendingViews.get(id).push(view);
      return;
    }
    var source = model.get("_esm");
    if (typeof source !== "string") {
      view.textContent = "(this widget has no front end livekit can load)";
      return;
    }
    loadModule(source).then(function (module) {
      var widget = module.default || module;
      return Promise.resolve(typeof widget === "function" ? widget() : widget).then(function (widget) {
        var first = model._initialized ? null : widget.initialize;
        model._initialized = true;
        return Promise.resolve(first ? first({ model: model }) : null).then(function () {
          if (!view.isConnected) return null;
          return widget.render({ model: model, el: view });
        });
      });
    }).then(function (cleanup) {
      view._livekitCleanup = cleanup;
    }).catch(function (err) {
      console.error("livekit live: a widget failed to draw", err);
      view.textContent = "(the widget failed to draw: " + err + ")";
    });
  }

  // -- Start -------------------------------------------------------------------

  function start() {
    if (!findCells()) return;
    addStyle();
    if (location.protocol !== "http:" && location.protocol !== "https:") {
      showHint();
      return;
    }
    fetch("/_livekit/status", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (status) { if (status && status.live) showBar(); else showHint(); })
      .catch(function () { showHint(); });
    // Leaving the page ends its session (and the listeners its cells started).
    window.addEventListener("pagehide", function () { if (live.socket) live.socket.close(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
