/* livekit: draw every <pre class="mermaid"> on the page with the vendored
 * mermaid (a classic script, so pages work from file://), follow the page's
 * light or dark theme, and give each diagram "Copy source" and "Download SVG"
 * buttons, as Kino's diagrams have.  Needs livekit-page.js first. */
(function () {
  "use strict";
  if (window.livekitMermaid) {
    window.livekitMermaid.run();
    return;
  }
  var page = window.livekitPage;
  // The type livekit.outputs.mermaid.MIME_TYPE names.
  var MIME_TYPES = ["text/vnd.mermaid"];

  function addToolbar(el, index) {
    if (el.parentNode && el.parentNode.classList && el.parentNode.classList.contains("livekit-diagram-frame")) return;
    var frame = document.createElement("div");
    frame.className = "livekit-diagram-frame";
    el.parentNode.insertBefore(frame, el);
    frame.appendChild(el);
    var bar = document.createElement("div");
    bar.className = "livekit-diagram-toolbar";
    var note = document.createElement("span");
    note.className = "livekit-diagram-note";
    note.textContent = "Wider than the window: scroll sideways for the rest.";
    bar.appendChild(note);
    bar.appendChild(page.button("Copy source", "Copy the Mermaid source", function (event) {
      var text = el.getAttribute("data-livekit-source") || "";
      page.copy(text, "diagram-" + index + ".mmd", function () {
        event.target.textContent = "Copied";
        setTimeout(function () { event.target.textContent = "Copy source"; }, 1500);
      });
    }));
    bar.appendChild(page.button("Download SVG", "Download the diagram as SVG", function () {
      var svg = el.querySelector("svg");
      if (svg) page.download("diagram-" + index + ".svg", new XMLSerializer().serializeToString(svg), "image/svg+xml");
    }));
    frame.appendChild(bar);
  }

  // Mermaid's own "dark" theme draws light-grey boxes with grey text; these
  // colours keep text and lines at a readable contrast on a dark page.
  var DARK = {
    darkMode: true,
    background: "transparent",
    primaryColor: "#1e293b",
    primaryTextColor: "#f1f5f9",
    primaryBorderColor: "#60a5fa",
    secondaryColor: "#334155",
    tertiaryColor: "#0f172a",
    lineColor: "#cbd5e1",
    textColor: "#f1f5f9",
    actorBkg: "#1e293b",
    actorBorder: "#60a5fa",
    actorTextColor: "#f1f5f9",
    actorLineColor: "#94a3b8",
    signalColor: "#e2e8f0",
    signalTextColor: "#f1f5f9",
    labelBoxBkgColor: "#1e293b",
    labelTextColor: "#f1f5f9",
    noteBkgColor: "#422006",
    noteTextColor: "#fef3c7",
    noteBorderColor: "#f59e0b",
    activationBkgColor: "#334155",
    activationBorderColor: "#60a5fa",
    clusterBkg: "#0f172a",
    clusterBorder: "#64748b",
    edgeLabelBackground: "#1e293b",
    nodeTextColor: "#f1f5f9",
  };

  // Mermaid shrinks a wide diagram to the column's width, and past a point
  // its text is unreadable: no text is drawn smaller than this (CSS px).
  var MIN_TEXT_PX = 11;
  // Room kept free at the window's right edge by a diagram wider than the column.
  var EDGE_PX = 16;

  // The smallest font size in the drawing, in the SVG's own units: drawn at
  // scale s, that text is s times as tall on screen.
  function smallestText(svg) {
    var smallest = Infinity;
    var texts = svg.querySelectorAll("text, foreignObject div, foreignObject span, foreignObject p");
    Array.prototype.forEach.call(texts, function (t) {
      if (!t.textContent.trim()) return;
      var size = parseFloat(window.getComputedStyle(t).fontSize);
      if (size && size < smallest) smallest = size;
    });
    return smallest === Infinity ? 16 : smallest;
  }

  // Fit a diagram to the page without its text going below MIN_TEXT_PX.  One
  // that fits the column legibly shrinks to it (CSS max-width).  A wider one
  // spans into the page's right margin, as sphinx-book-theme's full-width
  // cells do, up to the window's edge; only one still too wide for that, at
  // the smallest legible scale, scrolls sideways, and says so.
  function keepLegible(el, svg) {
    var box = svg.viewBox && svg.viewBox.baseVal;
    var frame = el.parentNode;
    var figure = el.closest("figure");
    var column = (figure || frame).parentNode;
    [frame, figure].forEach(function (node) { if (node) { node.style.width = ""; node.style.maxWidth = ""; } });
    frame.classList.remove("livekit-diagram-wide", "livekit-diagram-scrolls");
    svg.style.maxWidth = "";
    svg.style.width = "";
    if (!box || !box.width || !column || !column.clientWidth) return;
    var legible = Math.ceil(box.width * Math.min(1, MIN_TEXT_PX / smallestText(svg)));
    var room = column.clientWidth;
    if (legible <= room) {
      // A width of its own, so that the figure around it can fit it.
      svg.style.width = Math.min(box.width, room) + "px";
      return;
    }
    var left = column.getBoundingClientRect().left;
    var page = Math.max(room, document.documentElement.clientWidth - left - EDGE_PX);
    var width = Math.min(box.width, Math.max(legible, page));
    var shown = Math.min(width, page);
    svg.style.maxWidth = "none";
    svg.style.width = width + "px";
    frame.style.width = shown + "px";
    frame.style.maxWidth = "none";
    if (figure) { figure.style.width = shown + "px"; figure.style.maxWidth = "none"; }
    frame.classList.add("livekit-diagram-wide");
    if (width > shown) frame.classList.add("livekit-diagram-scrolls");
  }

  function refit() {
    Array.prototype.forEach.call(document.querySelectorAll("pre.mermaid, div.mermaid"), function (el) {
      var svg = el.querySelector("svg");
      if (svg && el.parentNode.classList.contains("livekit-diagram-frame")) keepLegible(el, svg);
    });
  }

  var rendering = Promise.resolve();

  function run(rerender) {
    if (!window.mermaid) return rendering;
    var all = Array.prototype.slice.call(document.querySelectorAll("pre.mermaid, div.mermaid"));
    var todo = [];
    all.forEach(function (el, i) {
      if (!el.hasAttribute("data-livekit-source")) {
        el.setAttribute("data-livekit-source", el.textContent.trim());
        el.setAttribute("data-livekit-index", String(i + 1));
      }
      if (rerender && el.getAttribute("data-processed") === "true") {
        el.removeAttribute("data-processed");
        el.textContent = el.getAttribute("data-livekit-source");
      }
      if (el.getAttribute("data-processed") !== "true") todo.push(el);
    });
    if (!todo.length) return rendering;
    rendering = rendering.then(function () {
      window.mermaid.initialize({
        startOnLoad: false,
        theme: page.isDark() ? "base" : "default",
        themeVariables: page.isDark() ? DARK : {},
        securityLevel: "strict",
        sequence: { useMaxWidth: true },
        flowchart: { useMaxWidth: true },
      });
      return window.mermaid.run({ nodes: todo }).catch(function (err) {
        console.error("livekit: a Mermaid diagram failed to draw", err);
      });
    }).then(function () {
      todo.forEach(function (el) {
        var svg = el.querySelector("svg");
        if (svg) page.label(svg, el);
        addToolbar(el, el.getAttribute("data-livekit-index"));
        if (svg) keepLegible(el, svg);
      });
    });
    return rendering;
  }

  window.livekitMermaid = { run: function () { return run(false); }, rerender: function () { return run(true); } };

  // A diagram that arrives live (livekit-live.js) is drawn like the others.
  page.register({
    mimeTypes: MIME_TYPES,
    element: function (source) {
      var pre = document.createElement("pre");
      pre.className = "mermaid";
      pre.textContent = source;
      pre.setAttribute("data-livekit-source", source);
      setTimeout(function () { window.livekitMermaid.run(); }, 0);
      return pre;
    },
  });

  var refitting = null;
  function onResize() {
    clearTimeout(refitting);
    refitting = setTimeout(refit, 150);
  }

  page.whenReady(function () {
    run(false);
    window.addEventListener("resize", onResize);
    page.onTheme(function () { run(true); });
  });
})();
