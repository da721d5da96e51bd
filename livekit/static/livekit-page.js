/* livekit-page.js: what every livekit output on a page shares.  Loaded
 * before the script of each kind of output (livekit-mermaid.js,
 * livekit-vega.js), in the book, in saved pages and in notebook outputs:
 *
 * - isDark() and onTheme(fn): follow the page's light or dark theme (the
 *   book's data-theme, JupyterLab's data-jp-theme-light, else the OS);
 * - button(), download(), copy(): the copy and download buttons;
 * - label(target, from): an ARIA label from the figure's caption;
 * - register(kind) and kinds: how livekit-live.js draws an output that
 *   arrives live, without a list of MIME types of its own.  A kind is
 *   {mimeTypes: [...], element: function (data) -> Element}.
 *
 * A classic script (not a module), so that pages opened from file:// load it. */
// Once per page, however many outputs carry this script.
window.livekitPage = window.livekitPage || (function () {
  "use strict";

  function isDark() {
    var root = document.documentElement;
    var body = document.body;
    var theme = root.getAttribute("data-theme") || (body && body.getAttribute("data-theme"));
    if (theme === "dark") return true;
    if (theme === "light") return false;
    // JupyterLab says which theme it shows on <body>, whatever the OS prefers.
    var jupyter = body && body.getAttribute("data-jp-theme-light");
    if (jupyter) return jupyter === "false";
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  var listeners = [];
  var dark = isDark();
  function themeChanged() {
    var now = isDark();
    if (now === dark) return;
    dark = now;
    listeners.forEach(function (fn) { fn(now); });
  }

  function whenReady(fn) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", fn);
    } else {
      fn();
    }
  }

  whenReady(function () {
    var watch = { attributes: true };
    new MutationObserver(themeChanged).observe(document.documentElement, Object.assign({ attributeFilter: ["data-theme", "class"] }, watch));
    if (document.body) {
      new MutationObserver(themeChanged).observe(document.body, Object.assign({ attributeFilter: ["data-theme", "data-jp-theme-light"] }, watch));
    }
    if (window.matchMedia) {
      var query = window.matchMedia("(prefers-color-scheme: dark)");
      if (query.addEventListener) query.addEventListener("change", themeChanged);
    }
  });

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

  // Copy to the clipboard where the page may (a secure context), else
  // download the text as a file of that name: a file:// page may not.
  function copy(text, name, done) {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { download(name, text, "text/plain"); });
    } else {
      download(name, text, "text/plain");
    }
  }

  // The drawing is an image to a screen reader, named by its figure's caption.
  function label(target, from) {
    target.setAttribute("role", "img");
    var figure = from.closest("figure");
    var caption = figure && figure.querySelector("figcaption, .caption-text");
    if (caption) target.setAttribute("aria-label", caption.textContent.trim());
  }

  var kinds = [];
  return {
    isDark: isDark,
    onTheme: function (fn) { listeners.push(fn); },
    whenReady: whenReady,
    button: button,
    download: download,
    copy: copy,
    label: label,
    kinds: kinds,
    register: function (kind) { kinds.push(kind); },
  };
})();
