// Attain dashboard: live updates (server-sent events), TV rotation and panels, chart export. No build step.
"use strict";
(function () {
  const main = document.getElementById("main");
  const liveBadge = document.getElementById("live");
  const toasts = document.getElementById("toasts");
  const tv = document.getElementById("tv");
  let refreshTimer = null;
  let everConnected = false;

  function setLive(state, words) {
    if (!liveBadge) return;
    liveBadge.dataset.state = state;
    liveBadge.textContent = words;
  }

  // Re-read the view shown (or the TV's current view) and swap it in, keeping focus and scroll.
  async function refresh() {
    const target = tv ? tv : main;
    const url = tv ? tv.dataset.current : window.location.pathname + window.location.search;
    if (!target || !url) return;
    try {
      const sep = url.includes("?") ? "&" : "?";
      const response = await fetch(url + sep + "partial=1", { credentials: "same-origin", cache: "no-store" });
      if (response.redirected && response.url.includes("/signin")) { window.location.assign(response.url); return; }
      if (!response.ok) return;
      const html = await response.text();
      const active = document.activeElement && document.activeElement.id;
      const open = Array.from(target.querySelectorAll("details[open]")).map((d) => d.closest("[data-metric]"))
        .filter(Boolean).map((card) => card.dataset.metric);
      target.innerHTML = html;
      open.forEach((metric) => {
        const card = target.querySelector('[data-metric="' + metric + '"] details');
        if (card) card.open = true;
      });
      bindExports(target);
      if (active && document.getElementById(active)) document.getElementById(active).focus();
      target.dataset.refreshedAt = new Date().toISOString();
    } catch (err) {
      setLive("down", "Reconnecting…");
    }
  }

  function scheduleRefresh(delay) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; refresh(); }, delay);
  }

  // Does an update's label (a period, or `contest:<id>`) concern a view watching `labels`? Labels are
  // separated by spaces; one ending in "*" matches every label it starts (`contest:*`: any contest).
  function concerns(labels, label) {
    return (labels || "").split(" ").some((l) => l && (l.endsWith("*") ? label.startsWith(l.slice(0, -1)) : l === label));
  }

  // A live panel (the TV's contests) is re-read on its own: the element of the same id in its page
  // (`data-live-src`, read partial) replaces it, when an update concerns its `data-live-period`.
  const panelTimers = new Map();
  function panels() { return Array.from(document.querySelectorAll("[data-live-src][id]")); }

  async function refreshPanel(panel) {
    const src = panel.dataset.liveSrc;
    try {
      const response = await fetch(src + (src.includes("?") ? "&" : "?") + "partial=1",
        { credentials: "same-origin", cache: "no-store" });
      if (response.redirected && response.url.includes("/signin")) { window.location.assign(response.url); return; }
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById(panel.id);
      if (!fresh) return;
      panel.innerHTML = fresh.innerHTML;
      panel.hidden = fresh.hidden;
      panel.dataset.refreshedAt = new Date().toISOString();
    } catch (err) {
      setLive("down", "Reconnecting…");
    }
  }

  function schedulePanels(label, delay) {
    panels().forEach((panel) => {
      if ((label !== null && !concerns(panel.dataset.livePeriod, label)) || panelTimers.has(panel.id)) return;
      panelTimers.set(panel.id, setTimeout(() => { panelTimers.delete(panel.id); refreshPanel(panel); }, delay));
    });
  }

  function toast(text) {
    if (!toasts) return;
    const item = document.createElement("div");
    item.className = "toast";
    item.textContent = "★ " + text;
    toasts.appendChild(item);
    setTimeout(() => item.remove(), 12000);
  }

  function spotlight(text) {
    const box = document.getElementById("spotlight");
    if (!box) return;
    box.textContent = "★ " + text;
    box.hidden = false;
    clearTimeout(box._timer);
    box._timer = setTimeout(() => { box.hidden = true; }, 10000);
  }

  // The live stream: EventSource reconnects by itself after a dropped connection; when the server says
  // `bye` (the replica stops), when the browser gives up (an HTTP error) or when nothing, not even the
  // server's ping every 15 s, arrived for 40 s (a connection dead without a word), the page closes it
  // and opens a new one after a short, jittered wait.
  const SILENT_MS = 40000;
  let source = null;
  let lastHeard = 0;
  let reconnectTimer = null;

  function reconnectSoon(delay) {
    if (source) { source.close(); source = null; }
    document.body.dataset.live = "off";
    setLive("down", "Reconnecting…");
    if (reconnectTimer) return;
    reconnectTimer = setTimeout(() => { reconnectTimer = null; connect(); }, delay + Math.random() * 1000);
  }

  function connect() {
    if (!window.EventSource || !liveBadge) return;
    const current = source = new EventSource("/dashboard/stream");
    lastHeard = Date.now();
    current.addEventListener("ping", () => { lastHeard = Date.now(); });
    current.addEventListener("hello", () => {
      lastHeard = Date.now();
      setLive("up", "Live");
      if (everConnected) { scheduleRefresh(100); schedulePanels(null, 100); }  // back after a restart: catch up at once
      everConnected = true;
      document.body.dataset.live = "on";
    });
    current.addEventListener("bye", () => reconnectSoon(1000));
    current.addEventListener("attainment", (e) => {
      lastHeard = Date.now();
      const label = String(JSON.parse(e.data).period || "");
      const watched = main && main.dataset.livePeriod;
      // the TV's rotation shows figures (its contests are a panel); a page, what its label says (none: all)
      if (tv ? !label.startsWith("contest:") : (!watched || concerns(watched, label))) scheduleRefresh(700);
      schedulePanels(label, 700);
    });
    current.addEventListener("celebration", (e) => {
      lastHeard = Date.now();
      const data = JSON.parse(e.data);
      if (tv) spotlight(data.headline); else toast(data.headline);
      scheduleRefresh(700);
    });
    current.onerror = () => {
      if (current !== source) return;
      if (current.readyState === EventSource.CLOSED) { reconnectSoon(2000); return; }
      document.body.dataset.live = "off";
      setLive("down", "Reconnecting…");  // EventSource retries by itself
    };
  }

  setInterval(() => {
    if (source && source.readyState === EventSource.OPEN && Date.now() - lastHeard > SILENT_MS) reconnectSoon(0);
  }, 5000);

  // PNG export of an inline SVG chart: drawn onto a canvas at twice its size, white background.
  function exportChart(id, filename) {
    const svg = document.querySelector('svg[data-chart="' + id + '"]');
    if (!svg) return;
    const box = svg.viewBox.baseVal;
    const xml = new XMLSerializer().serializeToString(svg);
    const image = new Image();
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = box.width * 2; canvas.height = box.height * 2;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
      canvas.toBlob((blob) => {
        const link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = filename;
        document.body.appendChild(link); link.click(); link.remove();
        setTimeout(() => URL.revokeObjectURL(link.href), 5000);
      }, "image/png");
    };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(xml);
  }

  function bindExports(root) {
    root.querySelectorAll("button[data-export]").forEach((button) => {
      button.addEventListener("click", () => exportChart(button.dataset.export, button.dataset.filename));
    });
  }

  function startTv() {
    const views = JSON.parse(tv.dataset.views || "[]");
    const every = Number(tv.dataset.every || 20) * 1000;
    let index = 0;
    async function show() {
      if (!views.length) return;
      tv.dataset.current = views[index % views.length];
      index += 1;
      await refresh();
    }
    show();
    setInterval(show, every);
    const full = document.getElementById("fullscreen");
    if (full) full.addEventListener("click", () => document.documentElement.requestFullscreen && document.documentElement.requestFullscreen());
  }

  bindExports(document);
  if (tv) startTv();
  connect();
})();
