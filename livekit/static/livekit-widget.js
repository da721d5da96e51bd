// livekit-widget.js: draws livekit's live widgets (a Vega-Lite chart, a text
// input) from the messages described in livekit/widgets/__init__.py.
//
// It needs only `render({model, el})`, `model.send(msg)`,
// `model.on("msg:custom", callback)` and, if present, `model.off(...)`:
// anywidget provides them in JupyterLab and VS Code, and `livekit serve`
// provides its own small model over its event stream.  vega, vega-lite and
// vega-embed are livekit's vendored copies: taken from the page when it has
// them, otherwise asked for once per page and run as classic scripts (their
// UMD builds cannot be imported as ES modules).

function isDark() {
  const root = document.documentElement;
  const theme = root.getAttribute("data-theme");
  if (theme) return theme === "dark";
  const jupyter = document.body && document.body.getAttribute("data-jp-theme-light");
  if (jupyter) return jupyter === "false";
  if (document.body && document.body.classList.contains("vscode-dark")) return true;
  return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
}

// One load of the vega libraries per page, whichever widget asks first.
function vegaLoaded(model) {
  if (window.vega && window.vegaEmbed) return Promise.resolve();
  if (!window.__livekitVegaLoading) {
    window.__livekitVegaLoading = new Promise((resolve) => {
      const onAssets = (msg) => {
        if (!msg || msg.type !== "assets") return;
        if (model.off) model.off("msg:custom", onAssets);
        for (const source of msg.scripts) {
          const script = document.createElement("script");
          // Hide AMD and CommonJS so that each UMD bundle sets its global,
          // even on a page with require.js (classic Jupyter Notebook).
          script.textContent = `(function (define, module, exports) {\n${source}\n}).call(window);`;
          document.head.appendChild(script);
        }
        resolve();
      };
      model.on("msg:custom", onAssets);
      model.send({ type: "assets" });
    });
  }
  return window.__livekitVegaLoading;
}

// Make a Vega dataset hold its old rows plus `rows`, keeping the last `keep`.
function applyChange(view, name, change) {
  const vega = window.vega;
  const keep = change.window;
  let rows = change.rows;
  const current = change.clear ? [] : view.data(name);
  const changeset = vega.changeset();
  if (rows.length >= keep) {
    changeset.remove(vega.truthy);
    rows = rows.slice(rows.length - keep);
  } else {
    if (change.clear) changeset.remove(vega.truthy);
    const drop = current.length + rows.length - keep;
    if (drop > 0) changeset.remove(current.slice(0, drop));
  }
  changeset.insert(rows);
  view.change(name, changeset);
}

function drawText(el, msg, model) {
  el.replaceChildren();
  const label = document.createElement("label");
  label.className = "livekit-input";
  const caption = document.createElement("span");
  caption.textContent = msg.label;
  const input = document.createElement("input");
  input.type = "text";
  input.value = msg.value;
  input.addEventListener("input", () => model.send({ type: "input", value: input.value }));
  label.append(caption, " ", input);
  el.appendChild(label);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "livekit-widget";
  el.appendChild(root);

  let view = null;
  let target = null;
  // What a redraw in another theme needs: the spec, its datasets' names,
  // and the theme it was drawn in.
  let drawn = null;
  let replay = null;
  let seq = 0;
  let scheduled = false;
  let closed = false;
  let chain = Promise.resolve();
  // Messages not yet drawn, merged per dataset: the browser holds at most a
  // window of rows per dataset however far behind it falls.
  const pending = new Map();

  async function drain() {
    scheduled = false;
    if (closed) return;
    const upTo = seq;
    const first = replay;
    const changes = new Map(pending);
    replay = null;
    pending.clear();
    if (first && first.kind === "text") {
      drawText(root, first, model);
    } else if (first) {
      await vegaLoaded(model);
      if (closed) return;
      if (!view) {
        target = document.createElement("div");
        root.appendChild(target);
        const dark = isDark();
        const made = await embed(target, first.spec, dark);
        if (!made) return;
        view = made;
        drawn = { spec: first.spec, names: Object.keys(first.datasets), dark };
      }
      for (const [name, rows] of Object.entries(first.datasets)) {
        applyChange(view, name, { clear: true, rows, window: rows.length });
      }
    }
    if (view) {
      for (const [name, change] of changes) applyChange(view, name, change);
      // Vega sizes a chart ("autosize") only when asked: without resize()
      // new data that widens the axis labels pushes the axis and chart
      // titles out of the SVG, where they are cut off.
      await view.resize().runAsync();
    }
    if (!closed && upTo) model.send({ type: "ack", seq: upTo });
  }

  async function embed(into, spec, dark) {
    const result = await window.vegaEmbed(into, spec, {
      actions: { export: true, source: true, compiled: false, editor: false },
      renderer: "svg",
      theme: dark ? "dark" : undefined,
    });
    if (!closed) return result.view;
    result.view.finalize();
    return null;
  }

  // The page's theme changed (JupyterLab's theme menu, the book's switch):
  // draw the chart again in it, with the rows it holds now.
  async function redraw() {
    if (closed || !view || !drawn || isDark() === drawn.dark) return;
    const dark = isDark();
    const rows = drawn.names.map((name) => [
      name,
      view.data(name).map((tuple) => Object.fromEntries(Object.entries(tuple))),
    ]);
    view.finalize();
    view = null;
    target.replaceChildren();
    const made = await embed(target, drawn.spec, dark);
    if (!made) return;
    view = made;
    drawn.dark = dark;
    for (const [name, held] of rows) {
      applyChange(view, name, { clear: true, rows: held, window: held.length });
    }
    await view.resize().runAsync();
  }

  function onTheme() {
    chain = chain.then(redraw).catch((err) => console.error("livekit widget:", err));
  }
  const themeObserver = new MutationObserver(onTheme);
  themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  if (document.body) {
    themeObserver.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "class"] });
  }
  const colorScheme = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  if (colorScheme && colorScheme.addEventListener) colorScheme.addEventListener("change", onTheme);

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    // Draw at most once per frame; messages arriving meanwhile are merged.
    requestAnimationFrame(() => {
      chain = chain.then(drain).catch((err) => console.error("livekit widget:", err));
    });
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== "object" || msg.type === "assets") return;
    if (typeof msg.seq === "number") seq = msg.seq;
    if (msg.type === "replay") {
      replay = msg;
      pending.clear();
    } else if (msg.type === "clear") {
      pending.set(msg.dataset, { clear: true, rows: [], window: 0 });
    } else if (msg.type === "push") {
      const change = pending.get(msg.dataset) || { clear: false, rows: [], window: 0 };
      let rows = change.rows.concat(msg.rows);
      if (rows.length > msg.window) rows = rows.slice(rows.length - msg.window);
      change.rows = rows;
      change.window = msg.window;
      pending.set(msg.dataset, change);
    } else {
      return;
    }
    schedule();
  }

  model.on("msg:custom", onMessage);
  model.send({ type: "ready" });

  return () => {
    closed = true;
    themeObserver.disconnect();
    if (colorScheme && colorScheme.removeEventListener) colorScheme.removeEventListener("change", onTheme);
    if (model.off) model.off("msg:custom", onMessage);
    if (view) view.finalize();
  };
}

export default { render };
