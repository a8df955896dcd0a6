// What the pages share: the API key this browser keeps (one localStorage name, so a key saved
// on the upload page works in the library and the docs, and back), copying to the clipboard,
// the CDN URL of a rendition, and a fetch of the /v1 API that always yields the JSON body.
// Plain DOM, no external assets; the pages load it before their own script.
"use strict";

window.imgpro = (function () {
  const KEY_STORAGE = "imgpro.apiKey";
  const SIZES = ["s", "m", "l"];
  const FORMATS = ["jpeg", "png", "webp", "avif"];
  const SHORT_EDGE = { s: 320, m: 640, l: 1080 }; // the reference's CDN sizes

  // ---- API key ---------------------------------------------------------------------
  function storedKey() {
    try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { return ""; }
  }

  function storeKey(key) {
    try { localStorage.setItem(KEY_STORAGE, key); return true; } catch (e) { return false; }
  }

  function forgetKey() {
    try { localStorage.removeItem(KEY_STORAGE); } catch (e) { /* nothing stored */ }
  }

  function keyLabel(key) { return key.slice(0, 13) + "..."; }

  // The key form both pages have (#key-form with #key-input, #key-forget): saving or forgetting
  // the key calls ``changed``; a browser that refuses to store it is told through ``say``.
  function bindKeyForm(changed, say) {
    document.querySelector("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.querySelector("#key-input");
      const key = input.value.trim();
      if (!key) return;
      if (!storeKey(key)) {
        say("This browser does not allow storing the key.");
        return;
      }
      input.value = "";
      changed();
    });
    document.querySelector("#key-forget").addEventListener("click", () => {
      forgetKey();
      changed();
    });
  }

  // ---- Calling the API ---------------------------------------------------------------
  // Resolves to {status, body, headers} for every HTTP answer (body null when not JSON);
  // rejects only when the server cannot be reached.
  function api(method, path, options) {
    const opts = options || {};
    const headers = {};
    const key = opts.key === undefined ? storedKey() : opts.key;
    if (key) headers.Authorization = "Bearer " + key;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    return fetch(path, { method, headers, body }).then((response) =>
      response.text().then((text) => {
        let parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
        return { status: response.status, body: parsed, headers: response.headers };
      }));
  }

  // The reference's error shape as one sentence: message, and how long to wait if it says.
  function errorText(status, body) {
    if (!body || typeof body !== "object") return "failed (HTTP " + status + ")";
    let text = body.message || body.error || "failed (HTTP " + status + ")";
    const action = body.action;
    if (action && action.type === "wait" && action.seconds) {
      text += " (try again in " + action.seconds + " s)";
    }
    return text;
  }

  // ---- Copy to clipboard -------------------------------------------------------------
  function copyFallback(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(() => copyFallback(text));
    }
    return copyFallback(text);
  }

  function flash(button, text) {
    const before = button.dataset.label || button.textContent;
    button.dataset.label = before;
    button.textContent = text;
    button.classList.add("copied");
    setTimeout(() => { button.textContent = before; button.classList.remove("copied"); }, 1500);
  }

  function copyButton(url, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = label || "Copy";
    button.title = "Copy " + url;
    button.dataset.url = url;
    button.addEventListener("click", () => {
      copy(url).then(
        () => flash(button, "Copied"),
        () => { flash(button, "Select and copy"); window.prompt("Copy this URL", url); });
    });
    return button;
  }

  function link(url, text) {
    const a = document.createElement("a");
    a.href = url;
    a.textContent = text;
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  }

  // ---- CDN URLs and sizes ------------------------------------------------------------
  // The CDN URL of a rendition: the media's src with another extension and a size.
  function cdnUrl(src, format, size) {
    const base = src.replace(/\.[A-Za-z0-9]+$/, "");
    return base + "." + format + (size ? "?size=" + size : "");
  }

  // The width of a rendition: sizes set the short edge and never upscale.
  function renditionWidth(width, height, size) {
    const short = Math.min(width, height);
    const target = SHORT_EDGE[size];
    if (!short || short <= target) return width;
    return Math.round((width * target) / short);
  }

  function humanBytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    if (n < 1024 * 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + " MB";
    return (n / 1024 / 1024 / 1024).toFixed(2) + " GB";
  }

  function when(unixSeconds) { return new Date(unixSeconds * 1000).toLocaleString(); }

  return {
    KEY_STORAGE, SIZES, FORMATS, storedKey, storeKey, forgetKey, keyLabel, bindKeyForm, api,
    errorText,
    copy, copyButton, flash, link, cdnUrl, renditionWidth, humanBytes, when,
  };
}());
