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

  // Mermaid shrinks a wide diagram to the page's width; past a point its
  // text is unreadable.  Below this scale the diagram keeps a readable size
  // and its block scrolls sideways instead.
  var MIN_SCALE = 0.5;

  function keepLegible(el, svg) {
    var box = svg.viewBox && svg.viewBox.baseVal;
    var room = el.clientWidth;
    if (!box || !box.width || !room) return;
    if (room / box.width < MIN_SCALE) {
      svg.style.maxWidth = "none";
      svg.setAttribute("width", String(Math.round(box.width * MIN_SCALE)));
      svg.removeAttribute("height");
      el.classList.add("livekit-diagram-wide");
    }
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
          keepLegible(el, svg);
        }
        addToolbar(el, el.getAttribute("data-livekit-index"));
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

  function start() {
    run(false);
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
