// The interactive API docs: Swagger UI (vendored, api/web/swagger-ui/) rendering /openapi.yaml.
// Try-it-out calls go to this same server ("servers: /" in the document). A key this browser
// already keeps (saved on the upload page or the library) is filled into Authorize, so the
// calls work at once; nothing is sent anywhere else (no validator badge, no external assets).
"use strict";

(function () {
  const { storedKey, keyLabel } = window.imgpro;

  function preauthorize(ui) {
    const key = storedKey();
    if (!key) return;
    ui.preauthorizeApiKey("bearerAuth", key);
    const note = document.getElementById("docs-key");
    note.textContent = "Authorized with the key this browser keeps (" + keyLabel(key) + ").";
    note.hidden = false;
  }

  const ui = window.SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    filter: true,
    onComplete: () => preauthorize(ui),
  });
  window.imgproDocs = ui;
}());
