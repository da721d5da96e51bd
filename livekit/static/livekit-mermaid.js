/* livekit: draw every <pre class="mermaid"> on the page with the vendored
 * mermaid (a classic script, so pages work from file://), follow the page's
 * light or dark theme, and give each diagram "Copy source" and "Download SVG"
 * buttons, as Kino's diagrams have. */
(function () {
  "use strict";
  if (window.livekitMermaid) {
    window.livekitMermaid.run();
    return;
  }

  function isDark() {
    var root = document.documentElement;
    var theme = root.getAttribute("data-theme") || (document.body && document.body.getAttribute("data-theme"));
    if (theme === "dark") return true;
    if (theme === "light") return false;
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  function button(label, title, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "livekit-diagram-button";
    b.textContent = label;
    b.title = title;
    b.setAttribute("aria-label", title);
    b.addEventListener("click", onClick);
    return b;
  }

  function download(name, text, type) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

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
    bar.appendChild(button("Copy source", "Copy the Mermaid source", function (event) {
      var text = el.getAttribute("data-livekit-source") || "";
      var done = function () { event.target.textContent = "Copied"; setTimeout(function () { event.target.textContent = "Copy source"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { download("diagram-" + index + ".mmd", text, "text/plain"); });
      } else {
        download("diagram-" + index + ".mmd", text, "text/plain");
      }
    }));
    bar.appendChild(button("Download SVG", "Download the diagram as SVG", function () {
      var svg = el.querySelector("svg");
      if (svg) download("diagram-" + index + ".svg", new XMLSerializer().serializeToString(svg), "image/svg+xml");
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
        theme: isDark() ? "base" : "default",
        themeVariables: isDark() ? DARK : {},
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
        if (svg) {
          svg.setAttribute("role", "img");
          var figure = el.closest("figure");
          var caption = figure && figure.querySelector("figcaption, .caption-text");
          if (caption) svg.setAttribute("aria-label", caption.textContent.trim());
        }
        addToolbar(el, el.getAttribute("data-livekit-index"));
        if (svg) keepLegible(el, svg);
      });
    });
    return rendering;
  }

  var dark = isDark();
  function onThemeChange() {
    var now = isDark();
    if (now !== dark) {
      dark = now;
      run(true);
    }
  }

  window.livekitMermaid = { run: function () { return run(false); }, rerender: function () { return run(true); } };

  var refitting = null;
  function onResize() {
    clearTimeout(refitting);
    refitting = setTimeout(refit, 150);
  }

  function start() {
    run(false);
    window.addEventListener("resize", onResize);
    new MutationObserver(onThemeChange).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme", "class"] });
    if (window.matchMedia) {
      var query = window.matchMedia("(prefers-color-scheme: dark)");
      if (query.addEventListener) query.addEventListener("change", onThemeChange);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
