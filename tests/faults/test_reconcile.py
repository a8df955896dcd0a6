"""The reconciler on its own: an original no row owns is removed after the grace period, a
live row whose original vanished is reported (log and /metrics), and originals of team hashes
the database does not know (``imgpro put``) are left alone."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.conftest import fresh_email, tiny_png
from tests.conftest import start_server, stop_server
from tests.faults.conftest import METRICS, metric, team_of, wait_until


def test_orphans_removed_missing_originals_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    server = start_server(data_dir, {**METRICS, "IMGPRO_RECONCILE_SECONDS": "1",
                                     "IMGPRO_ORPHAN_GRACE_SECONDS": "1"})
    http = httpx.Client(base_url=server.url, timeout=60)
    try:
        key = http.post("/v1/keys", json={"email": fresh_email("rec")}).json()["key"]
        auth = {"Authorization": f"Bearer {key}"}
        kept, lost = (http.post("/v1/upload", headers=auth,
                                files={"file": ("a.png", tiny_png(seed=s))}).json()
                      for s in (1, 2))
        team = team_of(kept)
        originals = data_dir / "originals"
        (originals / team / lost["id"]).unlink()  # the store lost it
        orphan = originals / team / "Orphan000001"  # stored, but its row never committed
        orphan.write_bytes(tiny_png(seed=3))
        foreign = originals / "ops" / "Foreign00001"  # imgpro put into a team of its own
        foreign.parent.mkdir()
        foreign.write_bytes(tiny_png(seed=4))

        wait_until(lambda: metric(server.url, "imgpro_reconcile_missing_originals") == 1
                   and not orphan.exists(), "a pass that saw both")
        assert metric(server.url, "imgpro_reconcile_orphans_removed_total") == 1
        assert foreign.exists() and (originals / team / kept["id"]).exists()
        assert f"{team}/{lost['id']}" in server.log()  # the missing one is named
        assert http.get(f"/v1/media/{lost['id']}", headers=auth).status_code == 200  # reported,
        # not removed: restoring the original from a backup is the operator's call
        assert "Traceback" not in server.log()
    finally:
        http.close()
        stop_server(server)
