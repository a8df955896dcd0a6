"""wrk's result line is parsed, and a real wrk run over a rotation hits every path."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from bench.wrk_load import lua_script, parse_output, run_wrk

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)"
)
LINE = (
    'WRKJSON {"requests":120,"duration_us":2000000,"bytes":5000,"connect":0,"read":1,"write":0,'
    '"status":20,"timeout":2,"p50_us":1500,"p90_us":2500,"p99_us":9000,"max_us":12000,"mean_us":1700.5}'
)


def test_parse_output_counts_only_successes_as_throughput() -> None:
    result = parse_output("Running 2s test\n" + LINE + "\n")
    assert result.ok == 100
    assert result.ok_per_second == 50
    assert result.socket_errors == 3
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)


def test_parse_output_without_result_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="no result line"):
        parse_output("unable to connect\n")


def test_lua_script_quotes_paths() -> None:
    script = lua_script(["/a?size=m", '/b"c'])
    assert 'local paths = {"/a?size=m", "/b\\"c"}' in script
    assert 'local prefixes = {""}' in script


@pytest.fixture
def counting_server() -> Iterator[tuple[str, Counter[str]]]:
    seen: Counter[str] = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            seen[self.path] += 1
            status = 503 if self.path == "/busy" else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)"
)
def test_run_wrk_rotates_over_paths_and_separates_errors(counting_server) -> None:
    url, seen = counting_server
    result = run_wrk(url, ["/a", "/b", "/c", "/busy"], connections=2, seconds=1)
    assert result.requests > 8
    assert {"/a", "/b", "/c", "/busy"} <= set(seen)
    # The server may have seen the requests still in flight when wrk stopped (one per connection).
    assert seen["/busy"] - 2 <= result.non_2xx <= seen["/busy"]
    served_ok = seen["/a"] + seen["/b"] + seen["/c"]
    assert served_ok - 2 <= result.ok <= served_ok


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)"
)
def test_run_wrk_puts_the_next_prefix_before_each_pass(counting_server) -> None:
    url, seen = counting_server
    result = run_wrk(url, ["/a", "/b"], prefixes=["/x", "/y", "/z"], connections=1, seconds=1)
    assert result.requests > 6
    assert set(seen) == {"/x/a", "/x/b", "/y/a", "/y/b", "/z/a", "/z/b"}
    assert max(seen.values()) - min(seen.values()) <= 1  # strict rotation
