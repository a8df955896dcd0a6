// The media library: the team's images newest first (GET /v1/media, more pages as you scroll,
// by the API's cursor), filtered by namespace, tags (all/any) and a name search; one image's
// details with in-place editing (PATCH) and delete; batch tags / namespace / visibility /
// delete over a selection (the batch API); and the usage meter (GET /v1/usage). The key is the
// one the upload page keeps (common.js). Plain DOM, no external assets, no build step.
"use strict";

(function () {
  const {
    SIZES, FORMATS, storedKey, bindKeyForm, keyLabel, api, errorText, copyButton, link, cdnUrl,
    renditionWidth, humanBytes, when,
  } = window.imgpro;
  const PAGE_SIZE = 48;
  const TYPING_PAUSE_MS = 250;
  const FIXED_FIELDS = new Set([
    "id", "name", "url", "src", "width", "height", "filesize", "extension", "editable", "tags",
    "namespace", "public", "created_at", "date", "external_id", "expires_at", "upgrade",
  ]);

  const $ = (selector) => document.querySelector(selector);
  const state = {
    cursor: null, hasMore: false, loading: false, generation: 0,
    items: new Map(), selected: new Set(), current: null,
  };
  let typingTimer = null;

  // ---- Key ---------------------------------------------------------------------------
  function setKeyStatus(text) { $("#key-status").textContent = text; }

  function showKeyState() {
    const key = storedKey();
    $("#key-forget").hidden = !key;
    $("#key-form").hidden = Boolean(key);
    $("#library").hidden = !key;
    $("#usage").hidden = !key;
    if (!key) {
      setKeyStatus("The library needs an API key: paste one below, or create one with " +
        "POST /v1/keys (see the API docs).");
      clearGrid();
      return;
    }
    setKeyStatus("Using key " + keyLabel(key) + " (kept in this browser).");
    refreshUsage();
    loadNamespaces();
    reload();
  }

  // A 401 means the stored key is wrong: say so once, where the key is.
  function keyRefused(body) {
    setKeyStatus("This key is not valid: " + ((body && body.message) || "unauthorized") +
      " Forget it and paste another.");
    $("#library").hidden = true;
    $("#usage").hidden = true;
  }

  // ---- Notices (errors, with the API's action as a button) -----------------------------
  function showNotice(text, action) {
    $("#notice-text").textContent = text;
    const button = $("#notice-action");
    if (action && action.url) {
      button.href = action.url;
      button.textContent = action.label || action.type;
      button.dataset.type = action.type || "";
      button.target = "_blank";
      button.rel = "noopener";
      button.hidden = false;
    } else {
      button.hidden = true;
      button.removeAttribute("href");
    }
    $("#notice").hidden = false;
  }

  function showError(response) {
    if (response.status === 401) keyRefused(response.body);
    const body = response.body;
    showNotice(errorText(response.status, body), body && body.action);
  }

  // ---- Usage -------------------------------------------------------------------------
  function refreshUsage() {
    return api("GET", "/v1/usage").then((response) => {
      if (response.status !== 200) {
        if (response.status === 401) keyRefused(response.body);
        return;
      }
      const u = response.body;
      $("#usage-plan").textContent = "(plan " + u.plan + (u.verified ? "" : ", email not verified") + ")";
      const uploads = $("#meter-uploads");
      uploads.max = Math.max(1, u.uploads_limit);
      uploads.value = u.uploads_used;
      uploads.high = uploads.max * 0.9;
      $("#usage-uploads").textContent = u.uploads_used + " of " + u.uploads_limit + " used, " +
        u.uploads_remaining + " left";
      const storage = $("#meter-storage");
      storage.max = Math.max(1, u.storage_limit_bytes);
      storage.value = u.storage_used_bytes;
      storage.high = storage.max * 0.9;
      $("#usage-storage").textContent = humanBytes(u.storage_used_bytes) + " of " +
        humanBytes(u.storage_limit_bytes);
      $("#usage").dataset.uploadsUsed = String(u.uploads_used);
      $("#usage").dataset.storageUsed = String(u.storage_used_bytes);
      $("#usage-resets").textContent = "Monthly uploads reset on " + when(u.resets_at) + ".";
    }, () => setKeyStatus("The server is not reachable."));
  }

  function loadNamespaces() {
    return api("GET", "/v1/namespaces").then((response) => {
      if (response.status !== 200) return;
      const select = $("#filter-namespace");
      const chosen = select.value;
      select.replaceChildren(new Option("All", ""));
      response.body.namespaces.forEach((ns) => {
        select.appendChild(new Option(ns.namespace + " (" + ns.count + ")", ns.namespace));
      });
      if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
    });
  }

  // ---- The grid ------------------------------------------------------------------------
  function filters() {
    const params = new URLSearchParams();
    const search = $("#filter-search").value.trim();
    const namespace = $("#filter-namespace").value;
    const tags = $("#filter-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    if (search) params.set("search", search);
    if (namespace) params.set("namespace", namespace);
    if (tags.length) {
      params.set("tags", tags.join(","));
      params.set("tag_mode", $("#filter-tag-mode").value);
    }
    return params;
  }

  function clearGrid() {
    state.generation += 1;
    state.cursor = null;
    state.hasMore = false;
    state.loading = false;
    state.items.clear();
    state.selected.clear();
    $("#grid").replaceChildren();
    $("#load-more").hidden = true;
    showSelection();
  }

  function reload() {
    clearGrid();
    state.hasMore = true;
    return loadPage();
  }

  function loadPage() {
    if (state.loading || !state.hasMore || !storedKey()) return Promise.resolve();
    state.loading = true;
    const generation = state.generation;
    const params = filters();
    params.set("limit", String(PAGE_SIZE));
    if (state.cursor) params.set("cursor", state.cursor);
    $("#grid-status").textContent = "Loading...";
    return api("GET", "/v1/media?" + params.toString()).then((response) => {
      if (generation !== state.generation) return; // the filters changed meanwhile
      state.loading = false;
      if (response.status !== 200) {
        state.hasMore = false;
        $("#grid-status").textContent = "";
        showError(response);
        return;
      }
      const page = response.body;
      page.items.forEach((media) => addCard(media, false));
      state.cursor = page.cursor;
      state.hasMore = Boolean(page.has_more && page.cursor);
      $("#load-more").hidden = !state.hasMore;
      const count = state.items.size;
      $("#grid-status").textContent = count === 0 ? "No images match." :
        count + (count === 1 ? " image" : " images") + (state.hasMore ? " so far" : "") + ".";
      if (state.hasMore && sentinelVisible()) loadPage(); // a tall screen: fill it
    }, () => {
      state.loading = false;
      $("#grid-status").textContent = "The server is not reachable.";
    });
  }

  function sentinelVisible() {
    const box = $("#sentinel").getBoundingClientRect();
    return box.top < window.innerHeight + 400;
  }

  function thumbnail(img, media) {
    img.src = cdnUrl(media.src, "webp", "s");
    img.srcset = ["s", "m"].map((size) =>
      cdnUrl(media.src, "webp", size) + " " + renditionWidth(media.width, media.height, size) + "w")
      .join(", ");
    img.sizes = "(max-width: 600px) 45vw, 200px";
    img.alt = media.name;
    img.width = renditionWidth(media.width, media.height, "s");
    img.height = Math.round(img.width * (media.height / Math.max(1, media.width)));
  }

  function fillCard(node, media) {
    node.dataset.id = media.id;
    thumbnail(node.querySelector(".thumb"), media);
    node.querySelector(".name").textContent = media.name;
    node.querySelector(".facts").textContent = media.width + " \u00d7 " + media.height + " \u00b7 " +
      humanBytes(media.filesize) + (media.namespace ? " \u00b7 " + media.namespace : "") +
      (media.public ? "" : " \u00b7 private");
    node.querySelector(".open").setAttribute("aria-label", "Details of " + media.name);
    node.querySelector(".select").setAttribute("aria-label", "Select " + media.name);
    node.dataset.tags = media.tags.join(",");
  }

  function addCard(media, first) {
    if (state.items.has(media.id)) return;
    state.items.set(media.id, media);
    const node = $("#card").content.firstElementChild.cloneNode(true);
    fillCard(node, media);
    const box = node.querySelector(".select");
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(media.id); else state.selected.delete(media.id);
      node.classList.toggle("selected", box.checked);
      showSelection();
    });
    node.querySelector(".open").addEventListener("click", () => openDetails(media.id));
    if (first) $("#grid").prepend(node); else $("#grid").appendChild(node);
  }

  function cardOf(id) { return $("#grid").querySelector('li.card[data-id="' + CSS.escape(id) + '"]'); }

  function updateCard(media) {
    const listed = state.items.get(media.id);
    if (!listed) return;
    FIXED_FIELDS.forEach((name) => { if (name in media) listed[name] = media[name]; });
    const node = cardOf(media.id);
    if (node) fillCard(node, listed);
  }

  function removeCard(id) {
    state.items.delete(id);
    state.selected.delete(id);
    const node = cardOf(id);
    if (node) node.remove();
    showSelection();
  }

  // ---- Details dialog ------------------------------------------------------------------
  function fact(list, term, value) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.append(value); else dd.textContent = value;
    list.append(dt, dd);
  }

  function urlValue(url) {
    const span = document.createElement("span");
    span.append(link(url, url), " ", copyButton(url, "Copy"));
    return span;
  }

  function metadataOf(media) {
    const meta = {};
    Object.keys(media).forEach((k) => { if (!FIXED_FIELDS.has(k)) meta[k] = media[k]; });
    return meta;
  }

  function fillUrls(media) {
    const table = $("#details-urls");
    const head = table.querySelector("thead tr");
    head.replaceChildren(head.firstElementChild);
    FORMATS.forEach((format) => {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = format;
      head.appendChild(th);
    });
    const body = table.querySelector("tbody");
    body.replaceChildren();
    [...SIZES, ""].forEach((size) => {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = size || "full";
      row.appendChild(th);
      FORMATS.forEach((format) => {
        const url = cdnUrl(media.src, format, size);
        const cell = document.createElement("td");
        cell.append(link(url, "open"), copyButton(url, "Copy"));
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
  }

  function fillDetails(media) {
    state.current = media;
    $("#details-title").textContent = media.name;
    const img = $("#details-image");
    img.src = cdnUrl(media.src, "webp", "m");
    img.alt = media.name;
    const facts = $("#details-facts");
    facts.replaceChildren();
    fact(facts, "Dimensions", media.width + " \u00d7 " + media.height + " px");
    fact(facts, "File size", humanBytes(media.filesize) + " (" + media.extension + ")");
    fact(facts, "Uploaded", when(media.created_at));
    if (media.date) fact(facts, "Date", when(media.date));
    if (media.expires_at) fact(facts, "Deleted on", when(media.expires_at));
    fact(facts, "Namespace", media.namespace || "(none)");
    fact(facts, "Tags", media.tags.length ? media.tags.join(", ") : "(none)");
    fact(facts, "Public", media.public ? "yes: anyone with the link sees the viewer page" : "no");
    if (media.external_id) fact(facts, "External id", media.external_id);
    fact(facts, "Id", media.id);
    fact(facts, "Viewer", urlValue(media.url));
    fact(facts, "Original", urlValue(media.src));
    const meta = metadataOf(media);
    fact(facts, "Metadata", Object.keys(meta).length ? JSON.stringify(meta) : "(none)");

    $("#edit-name").value = media.name;
    $("#edit-tags").value = media.tags.join(",");
    $("#edit-namespace").value = media.namespace || "";
    $("#edit-public").checked = media.public;
    $("#edit-metadata").value = Object.keys(meta).length ? JSON.stringify(meta, null, 2) : "";
    const editable = media.editable !== false;
    $("#edit-form").querySelectorAll("input, textarea, button").forEach((el) => {
      el.disabled = !editable;
    });
    $("#delete-one").disabled = !editable;
    fillUrls(media);
  }

  function openDetails(id) {
    $("#edit-status").textContent = "";
    hideDeleteConfirm();
    return api("GET", "/v1/media/" + encodeURIComponent(id)).then((response) => {
      if (response.status !== 200) { showError(response); return; }
      fillDetails(response.body);
      const dialog = $("#details");
      if (!dialog.open) dialog.showModal();
    });
  }

  // Only what the person changed goes into the PATCH, and removed metadata keys become null
  // (the API's way to drop a key).
  function changes(media) {
    const patch = {};
    const name = $("#edit-name").value.trim();
    if (name !== media.name) patch.name = name;
    const tags = $("#edit-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    if (tags.join(",") !== media.tags.join(",")) patch.tags = tags.join(",");
    const namespace = $("#edit-namespace").value.trim();
    if (namespace !== (media.namespace || "")) patch.namespace = namespace || null;
    const isPublic = $("#edit-public").checked;
    if (isPublic !== media.public) patch.public = isPublic;
    const text = $("#edit-metadata").value.trim();
    let meta = {};
    if (text) {
      meta = JSON.parse(text); // a SyntaxError is reported by the caller
      if (!meta || typeof meta !== "object" || Array.isArray(meta)) {
        throw new SyntaxError("the metadata must be a JSON object");
      }
    }
    const before = metadataOf(media);
    const metaPatch = {};
    Object.keys(before).forEach((k) => { if (!(k in meta)) metaPatch[k] = null; });
    Object.keys(meta).forEach((k) => {
      if (JSON.stringify(meta[k]) !== JSON.stringify(before[k])) metaPatch[k] = meta[k];
    });
    if (Object.keys(metaPatch).length) patch.metadata = metaPatch;
    return patch;
  }

  function saveDetails(event) {
    event.preventDefault();
    const media = state.current;
    if (!media) return;
    let patch;
    try { patch = changes(media); } catch (e) {
      $("#edit-status").textContent = "Metadata: " + e.message;
      return;
    }
    if (!Object.keys(patch).length) { $("#edit-status").textContent = "Nothing changed."; return; }
    $("#edit-status").textContent = "Saving...";
    api("PATCH", "/v1/media/" + encodeURIComponent(media.id), { json: patch }).then((response) => {
      if (response.status !== 200) {
        $("#edit-status").textContent = errorText(response.status, response.body);
        if (response.status === 401) keyRefused(response.body);
        return;
      }
      fillDetails(response.body);
      updateCard(response.body);
      $("#edit-status").textContent = "Saved.";
      if ("namespace" in patch) loadNamespaces();
    });
  }

  function hideDeleteConfirm() {
    $("#delete-confirm").hidden = true;
    $("#delete-one").hidden = false;
  }

  function deleteCurrent() {
    const media = state.current;
    if (!media) return;
    api("DELETE", "/v1/media/" + encodeURIComponent(media.id)).then((response) => {
      if (response.status !== 200) { showError(response); return; }
      $("#details").close();
      removeCard(media.id);
      $("#action-status").textContent = "Deleted " + media.name + ".";
      refreshUsage();
      loadNamespaces();
    });
  }

  // ---- Selection and batch ---------------------------------------------------------------
  function showSelection() {
    const count = state.selected.size;
    $("#batch").hidden = count === 0;
    $("#batch-count").textContent = count + " selected";
    $("#batch-confirm").hidden = true;
    $("#batch-delete").hidden = false;
  }

  function clearSelection() {
    state.selected.clear();
    $("#grid").querySelectorAll(".select").forEach((box) => { box.checked = false; });
    $("#grid").querySelectorAll(".card.selected").forEach((c) => c.classList.remove("selected"));
    showSelection();
  }

  function afterBatch(response, verb, key) {
    if (response.status !== 200) { showError(response); return; }
    const n = response.body[key];
    $("#action-status").textContent = verb + " " + n + (n === 1 ? " image" : " images") + ".";
    refreshUsage();
    loadNamespaces();
    reload();
  }

  function batchUpdate(update) {
    const ids = [...state.selected];
    if (!ids.length) return;
    $("#action-status").textContent = "Updating...";
    api("PATCH", "/v1/media/batch", { json: { ids, update } })
      .then((response) => afterBatch(response, "Updated", "updated"));
  }

  function batchDelete() {
    const ids = [...state.selected];
    if (!ids.length) return;
    $("#action-status").textContent = "Deleting...";
    api("DELETE", "/v1/media/batch", { json: { ids } })
      .then((response) => afterBatch(response, "Deleted", "deleted"));
  }

  // ---- Uploading into the library ------------------------------------------------------------
  function uploadFiles(files) {
    const list = Array.from(files);
    if (!list.length) return;
    const namespace = $("#filter-namespace").value;
    let done = 0;
    let failed = 0;
    const status = $("#upload-status");
    status.textContent = "Uploading " + list.length + "...";
    $("#action-status").textContent = "";
    const one = (file) => {
      const form = new FormData();
      form.append("file", file, file.name);
      if (namespace) form.append("namespace", namespace);
      return api("POST", "/v1/upload", { body: form }).then((response) => {
        if (response.status === 201) done += 1;
        else { failed += 1; showError(response); }
      }, () => { failed += 1; });
    };
    list.reduce((chain, file) => chain.then(() => one(file)), Promise.resolve()).then(() => {
      status.textContent = "Uploaded " + done + " of " + list.length +
        (failed ? " (" + failed + " failed)." : ".");
      refreshUsage();
      loadNamespaces();
      reload();
    });
  }

  // ---- Wiring ------------------------------------------------------------------------
  // Another view of the library: the last action's message no longer applies.
  function filtersChanged() {
    $("#action-status").textContent = "";
    reload();
  }

  function onTyping() {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(filtersChanged, TYPING_PAUSE_MS);
  }

  function init() {
    bindKeyForm(showKeyState, setKeyStatus);
    $("#notice-close").addEventListener("click", () => { $("#notice").hidden = true; });

    $("#filters").addEventListener("submit", (event) => {
      event.preventDefault();
      filtersChanged();
    });
    $("#filter-search").addEventListener("input", onTyping);
    $("#filter-tags").addEventListener("input", onTyping);
    $("#filter-namespace").addEventListener("change", filtersChanged);
    $("#filter-tag-mode").addEventListener("change", () => {
      if ($("#filter-tags").value.trim()) filtersChanged();
    });
    $("#load-more").addEventListener("click", loadPage);
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) loadPage();
      }, { rootMargin: "400px" }).observe($("#sentinel"));
    }

    const input = $("#library-file");
    input.addEventListener("change", () => { uploadFiles(input.files); input.value = ""; });

    $("#edit-form").addEventListener("submit", saveDetails);
    $("#delete-one").addEventListener("click", () => {
      $("#delete-one").hidden = true;
      $("#delete-confirm").hidden = false;
      $("#delete-no").focus();
    });
    $("#delete-no").addEventListener("click", () => { hideDeleteConfirm(); $("#delete-one").focus(); });
    $("#delete-yes").addEventListener("click", deleteCurrent);

    $("#batch-clear").addEventListener("click", clearSelection);
    $("#batch-tags-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const tags = $("#batch-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
      const mode = $("#batch-tag-mode").value;
      if (!tags.length && mode !== "replace") return;
      batchUpdate({ tags: tags.join(","), tag_mode: mode });
    });
    $("#batch-namespace-form").addEventListener("submit", (event) => {
      event.preventDefault();
      batchUpdate({ namespace: $("#batch-namespace").value.trim() || null });
    });
    $("#batch-public").addEventListener("click", () => batchUpdate({ public: true }));
    $("#batch-private").addEventListener("click", () => batchUpdate({ public: false }));
    $("#batch-delete").addEventListener("click", () => {
      $("#batch-confirm-count").textContent = state.selected.size +
        (state.selected.size === 1 ? " image" : " images");
      $("#batch-delete").hidden = true;
      $("#batch-confirm").hidden = false;
      $("#batch-confirm-no").focus();
    });
    $("#batch-confirm-no").addEventListener("click", () => {
      $("#batch-confirm").hidden = true;
      $("#batch-delete").hidden = false;
      $("#batch-delete").focus();
    });
    $("#batch-confirm-yes").addEventListener("click", batchDelete);

    // Another tab saved or forgot the key: follow it.
    window.addEventListener("storage", (event) => {
      if (event.key === window.imgpro.KEY_STORAGE) showKeyState();
    });
    showKeyState();
  }

  init();
}());
