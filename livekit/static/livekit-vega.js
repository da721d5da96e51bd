/* livekit: draw every .livekit-vega block on the page with the vendored
 * vega-embed (classic scripts, so pages work from file://).  The spec sits in
 * a JSON <script> inside the block.  Charts follow the page's dark mode.
 * Needs livekit-page.js first. */
(function () {
  "use strict";
  if (window.livekitVega) {
    window.livekitVega.run();
    return;
  }
  var page = window.livekitPage;
  // The types livekit.outputs.vegalite.MIME_TYPES names, the first preferred.
  var MIME_TYPES = ["application/vnd.vegalite.v6+json", "application/vnd.vegalite.v5+json"];

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
      theme: page.isDark() ? "dark" : undefined,
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

  window.livekitVega = { run: function () { return run(false); }, views: views };

  // A chart that arrives live (livekit-live.js) is drawn like the others.
  page.register({
    mimeTypes: MIME_TYPES,
    element: function (spec) {
      var chart = document.createElement("div");
      chart.className = "livekit-vega";
      var holder = document.createElement("script");
      holder.type = "application/json";
      holder.textContent = JSON.stringify(spec);
      chart.appendChild(holder);
      setTimeout(function () { window.livekitVega.run(); }, 0);
      return chart;
    },
  });

  page.whenReady(function () {
    run(false);
    page.onTheme(function () { run(true); });
  });
})();
