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

// One change that does what `earlier` then `later` do to a dataset.
function merge(earlier, later) {
  if (!earlier || later.clear) return later;
  let rows = earlier.rows.concat(later.rows);
  if (rows.length > later.window) rows = rows.slice(rows.length - later.window);
  return { clear: earlier.clear, rows, window: later.window };
}

// Tell the page what is on screen now: a "livekit-widget:drawn" event on the
// widget's element (it bubbles) whose detail maps each dataset drawn to its
// newest row.  Benchmarks and tests time a push to its drawing with it.
function drawnEvent(root, changes) {
  const newest = {};
  for (const [name, change] of changes) {
    if (change.rows.length) newest[name] = change.rows[change.rows.length - 1];
  }
  root.dispatchEvent(new CustomEvent("livekit-widget:drawn", { bubbles: true, detail: newest }));
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
  // What a redraw needs: the chart's specs (with data, and its empty state
  // when Python sent one), its datasets' names and lengths, the spec shown
  // and the theme it was drawn in.
  let drawn = null;
  let replay = null;
  let scheduled = false;
  let closed = false;
  let chain = Promise.resolve();
  // Messages not yet drawn, merged per dataset: the browser holds at most a
  // window of rows per dataset however far behind it falls.
  const pending = new Map();

  async function drain() {
    scheduled = false;
    if (closed) return;
    const first = replay;
    const changes = new Map();
    if (first && first.datasets) {
      // The replay holds every row: it replaces what the view holds.
      for (const [name, rows] of Object.entries(first.datasets)) {
        changes.set(name, { clear: true, rows, window: rows.length });
      }
    }
    for (const [name, change] of pending) changes.set(name, merge(changes.get(name), change));
    replay = null;
    pending.clear();
    if (first && first.kind === "text") {
      drawText(root, first, model);
      return;
    }
    if (first) {
      await vegaLoaded(model);
      if (closed) return;
      const names = Object.keys(first.datasets);
      drawn = {
        full: first.spec,
        empty: first.empty || null,
        lengths: new Map(names.map((name) => [name, 0])),
        shown: null,
        dark: drawn ? drawn.dark : isDark(),
      };
    }
    if (!drawn) return;
    for (const [name, change] of changes) drawn.lengths.set(name, change.window);
    // Before the first point (and after a clear), the empty state: an empty
    // dataset makes Vega warn and draw a lone 0.000000 tick.
    const empty = drawn.empty && [...drawn.lengths.values()].every((length) => length === 0);
    const spec = empty ? drawn.empty : drawn.full;
    if (!view || drawn.shown !== spec) {
      // Switching specs: the old view held no rows (empty state) or every
      // dataset is now empty, so `changes` hold all the rows there are.
      const rows = new Map();
      for (const [name, change] of changes) {
        rows.set(name, change.rows.slice(Math.max(0, change.rows.length - change.window)));
      }
      if (!(await show(spec, isDark(), empty ? new Map() : rows))) return;
    } else if (!empty) {
      for (const [name, change] of changes) applyChange(view, name, change);
    }
    // Vega sizes a chart ("autosize") only when asked: without resize()
    // new data that widens the axis labels pushes the axis and chart
    // titles out of the SVG, where they are cut off.
    await view.resize().runAsync();
    drawnEvent(root, changes);
  }

  // Draw `spec` in place of the current view, if any, its datasets holding
  // `rows` (name -> rows) from the first run: a view embedded empty and
  // filled afterwards makes Vega warn about every empty field once.  False
  // if the widget closed meanwhile.
  async function show(spec, dark, rows) {
    if (view) view.finalize();
    view = null;
    if (!target) {
      target = document.createElement("div");
      root.appendChild(target);
    }
    target.replaceChildren();
    const datasets = { ...(spec.datasets || {}) };
    for (const [name, held] of rows) if (name in datasets) datasets[name] = held;
    const made = await embed(target, { ...spec, datasets }, dark);
    if (!made) return false;
    view = made;
    drawn.shown = spec;
    drawn.dark = dark;
    return true;
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
    const rows = [...drawn.lengths.keys()].map((name) => [
      name,
      view.data(name).map((tuple) => Object.fromEntries(Object.entries(tuple))),
    ]);
    if (!(await show(drawn.shown, isDark(), new Map(rows)))) return;
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
    if (msg.type === "replay") {
      replay = msg;
      pending.clear();
    } else if (msg.type === "clear") {
      pending.set(msg.dataset, { clear: true, rows: [], window: 0 });
    } else if (msg.type === "push") {
      pending.set(msg.dataset, merge(pending.get(msg.dataset), { clear: false, rows: msg.rows, window: msg.window }));
    } else {
      return;
    }
    schedule();
    // Acknowledge on arrival, not once drawn: what arrives while a frame is
    // drawn is merged into `pending` (at most a window of rows per dataset),
    // so Python may send again at once.  Waiting for the drawing cost a push
    // a whole extra round trip through the kernel behind the previous one.
    if (typeof msg.seq === "number") model.send({ type: "ack", seq: msg.seq });
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
