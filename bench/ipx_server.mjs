// The ipx peer for bench/compare.py: ipx's own Node server over a directory, on a free loopback
// port, with ipx's defaults (sharp/libvips). Usage: node ipx_server.mjs DIR (run from a folder
// where `npm install ipx` was done, so that "ipx" resolves). Prints "serving on URL" when ready.
import { createServer } from "node:http";
import { createIPX, createIPXNodeServer, ipxFSStorage } from "ipx";

const ipx = createIPX({ storage: ipxFSStorage({ dir: process.argv[2] }) });
const server = createServer(createIPXNodeServer(ipx));
server.listen(0, "127.0.0.1", () => {
  console.log(`ipx serving on http://127.0.0.1:${server.address().port}`);
});
