// The Datasets page follows Airflow's color mode. Airflow 3's UI (next-themes) puts the class
// "dark" or "light" on its <html> and keeps the choice in localStorage["theme"]
// ("light" | "dark" | "system"); this page is in an iframe of that UI, on the same origin.
// No data is handled here: the server renders the page with escaping.
(function () {
  "use strict";
  const root = document.documentElement;
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  function parentRoot() {
    try {
      return window.parent !== window ? window.parent.document.documentElement : null;
    } catch (e) {
      return null;
    }
  }
  function mode() {
    const p = parentRoot();
    if (p && p.classList.contains("dark")) return "dark";
    if (p && p.classList.contains("light")) return "light";
    try {
      const t = window.localStorage.getItem("theme");
      if (t === "dark" || t === "light") return t;
    } catch (e) { /* storage blocked: follow the OS */ }
    return media.matches ? "dark" : "light";
  }
  function apply() {
    const m = mode();
    root.classList.toggle("dark", m === "dark");
    root.classList.toggle("light", m === "light");
  }
  apply();
  window.addEventListener("storage", apply);
  media.addEventListener("change", apply);
  const p = parentRoot();
  if (p) new MutationObserver(apply).observe(p, { attributes: true, attributeFilter: ["class"] });
})();
