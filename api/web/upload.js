// The upload page: drag-and-drop or picker, several files at once, per-file progress, an
// optional API key kept in localStorage, and for each stored image its viewer URL and its
// CDN URLs (s/m/l x jpeg/png/webp/avif) with copy buttons. Plain DOM, no external assets;
// the key, copying and CDN URLs come from common.js (shared with the library and the docs).
"use strict";

(function () {
  const {
    SIZES, FORMATS, storedKey, bindKeyForm, keyLabel, api, errorText, copyButton, link, cdnUrl,
    humanBytes,
  } = window.imgpro;
  const PARALLEL = 3; // uploads in flight at once; the rest wait their turn

  const $ = (selector) => document.querySelector(selector);
  const queue = [];
  let running = 0;

  // ---- API key -----------------------------------------------------------------------
  function setKeyStatus(text) { $("#key-status").textContent = text; }

  function showKeyState() {
    const key = storedKey();
    $("#key-forget").hidden = !key;
    $("#key-form").hidden = Boolean(key);
    if (!key) {
      setKeyStatus("No key: uploads are anonymous and deleted after 30 days.");
      return;
    }
    setKeyStatus("Using key " + keyLabel(key) + " (checking)");
    api("GET", "/v1/usage", { key })
      .then(({ status, body }) => {
        if (status === 200) {
          setKeyStatus("Using key " + keyLabel(key) + ": plan " + body.plan + ", " +
            body.uploads_remaining + " of " + body.uploads_limit + " uploads left this month" +
            (body.verified ? "." : " (email not verified: images are kept 30 days)."));
        } else if (status === 401) {
          setKeyStatus("This key is not valid: " + ((body && body.message) || "unauthorized") +
            " Forget it and paste another.");
        } else {
          setKeyStatus("Using key " + keyLabel(key) + " (" + ((body && body.message) || status) +
            ")");
        }
      })
      .catch(() => setKeyStatus("Using key " + keyLabel(key) + " (server not reachable)"));
  }

  // ---- Upload list -------------------------------------------------------------------
  function newItem(file) {
    const node = $("#upload-item").content.firstElementChild.cloneNode(true);
    node.querySelector(".name").textContent = file.name;
    node.querySelector(".size").textContent = humanBytes(file.size);
    const thumb = node.querySelector(".thumb");
    if (file.type.startsWith("image/")) {
      const preview = URL.createObjectURL(file);
      thumb.src = preview;
      thumb.addEventListener("load", () => URL.revokeObjectURL(preview), { once: true });
      thumb.addEventListener("error", () => { thumb.removeAttribute("src"); }, { once: true });
    }
    $("#uploads").prepend(node);
    return node;
  }

  function setState(item, text, kind) {
    item.querySelector(".state").textContent = text;
    if (kind) item.classList.add(kind);
  }

  function showResult(item, media) {
    item.dataset.id = media.id;
    item.dataset.url = media.url;
    item.dataset.src = media.src;
    const thumb = item.querySelector(".thumb");
    thumb.src = cdnUrl(media.src, "webp", "s");
    thumb.alt = media.name;
    item.querySelector("progress").value = 100;
    setState(item, "stored: " + media.width + " \u00d7 " + media.height + " " +
      media.extension.toUpperCase() + (media.public ? "" : " (private)"), "done");

    const links = item.querySelector(".links");
    links.append("Viewer: ", link(media.url, media.url), copyButton(media.url, "Copy"),
      " Original: ", link(media.src, media.extension), copyButton(media.src, "Copy"));
    links.querySelectorAll("button.copy")[0].classList.add("copy-viewer");

    if (media.expires_at) {
      const expiry = item.querySelector(".expiry");
      expiry.hidden = false;
      expiry.textContent = "Deleted on " + new Date(media.expires_at * 1000).toLocaleString() +
        " unless you keep it with a verified API key.";
    }

    const head = item.querySelector("table.cdn thead tr");
    FORMATS.forEach((format) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = format;
      head.appendChild(th);
    });
    const body = item.querySelector("table.cdn tbody");
    SIZES.forEach((size) => {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = size;
      row.appendChild(th);
      FORMATS.forEach((format) => {
        const url = cdnUrl(media.src, format, size);
        const cell = document.createElement("td");
        cell.append(link(url, "open"), copyButton(url, "Copy"));
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
    item.querySelector(".result").hidden = false;
    if (media.upgrade) showUpgrade(media.upgrade);
  }

  function showUpgrade(upgrade) {
    const box = $("#upgrade");
    box.replaceChildren(upgrade.message + " ");
    if (upgrade.url) box.append(link(upgrade.url, upgrade.label || "Learn more"));
    box.hidden = false;
  }

  function showError(item, status, body) {
    setState(item, errorText(status, body), "failed");
    const action = body && body.action;
    if (action && action.url) {
      const links = item.querySelector(".links");
      links.append(link(action.url, action.label || action.type));
      item.querySelector(".result").hidden = false;
      item.querySelector("table.cdn").hidden = true;
    }
  }

  // ---- Sending -----------------------------------------------------------------------
  function formFor(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    const namespace = $("#opt-namespace").value.trim();
    const tags = $("#opt-tags").value.trim();
    if (namespace) form.append("namespace", namespace);
    if (tags) form.append("tags", tags);
    form.append("public", $("#opt-public").checked ? "true" : "false");
    return form;
  }

  function send(job) {
    const { file, item } = job;
    const xhr = new XMLHttpRequest();
    const progress = item.querySelector("progress");
    xhr.open("POST", "/v1/upload");
    const key = storedKey();
    if (key) xhr.setRequestHeader("Authorization", "Bearer " + key);
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((event.loaded / event.total) * 100);
      progress.value = percent;
      setState(item, "uploading " + percent + "%");
    });
    xhr.upload.addEventListener("load", () => setState(item, "processing"));
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status === 201 && body) showResult(item, body);
      else showError(item, xhr.status, body);
      finish();
    });
    xhr.addEventListener("error", () => { setState(item, "network error", "failed"); finish(); });
    xhr.addEventListener("abort", () => { setState(item, "cancelled", "failed"); finish(); });
    setState(item, "uploading");
    xhr.send(formFor(file));
  }

  function finish() {
    running -= 1;
    pump();
    if (running === 0 && !queue.length && storedKey()) showKeyState(); // uploads left, fresh
  }

  function pump() {
    while (running < PARALLEL && queue.length) {
      running += 1;
      send(queue.shift());
    }
  }

  function addFiles(files) {
    Array.from(files).forEach((file) => queue.push({ file, item: newItem(file) }));
    pump();
  }

  // ---- Wiring ------------------------------------------------------------------------
  function init() {
    bindKeyForm(showKeyState, setKeyStatus);
    const input = $("#file-input");
    input.addEventListener("change", () => { addFiles(input.files); input.value = ""; });

    const zone = $("#drop-zone");
    ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => {
      zone.classList.remove("over");
    }));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) addFiles(event.dataTransfer.files);
    });
    // A file dropped beside the zone must not navigate away from the page.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());
    showKeyState();
  }

  init();
}());
