/* livekit: draw every .livekit-vega block on the page with the vendored
 * vega-embed (classic scripts, so pages work from file://).  The spec sits in
 * a JSON <script> inside the block.  Charts follow the page's dark mode. */
(function () {
  "use strict";
  if (window.livekitVega) {
    window.livekitVega.run();
    return;
  }

  function isDark() {
    var theme = document.documentElement.getAttribute("data-theme");
    if (theme === "dark") return true;
    if (theme === "light") return false;
    // JupyterLab says which theme it shows on <body>, whatever the OS prefers.
    var jupyter = document.body && document.body.getAttribute("data-jp-theme-light");
    if (jupyter) return jupyter === "false";
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  var views = new Map();

  function embed(el) {
    var holder = el.querySelector('script[type="application/json"]');
    if (!holder || typeof window.vegaEmbed !== "function") return Promise.resolve(null);
    var spec = JSON.parse(holder.textContent);
    var target = el.querySelector(".livekit-vega-view");
    if (!target) {
      target = document.createElement("div");
      target.className = "livekit-vega-view";
      el.appendChild(target);
    }
    var old = views.get(el);
    if (old) old.finalize();
    var options = {
      actions: { export: true, source: true, compiled: false, editor: false },
      theme: isDark() ? "dark" : undefined,
      renderer: "svg",
    };
    return window.vegaEmbed(target, spec, options).then(function (result) {
      views.set(el, result.view);
      el.setAttribute("data-livekit-drawn", "true");
      return result.view;
    }).catch(function (err) {
      console.error("livekit: a Vega-Lite chart failed to draw", err);
    });
  }

  function run(redraw) {
    var blocks = document.querySelectorAll(".livekit-vega");
    var done = [];
    blocks.forEach(function (el) {
      if (redraw || el.getAttribute("data-livekit-drawn") !== "true") done.push(embed(el));
    });
    return Promise.all(done);
  }

  var dark = isDark();
  function onThemeChange() {
    if (isDark() !== dark) {
      dark = isDark();
      run(true);
    }
  }

  window.livekitVega = { run: function () { return run(false); }, views: views };

  function start() {
    run(false);
    new MutationObserver(onThemeChange).observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
    if (document.body) {
      new MutationObserver(onThemeChange).observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });
    }
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
