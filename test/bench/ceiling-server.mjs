/**
 * The ceiling: a bare node:http handler that reads the form body and answers a constant active
 * introspection, with no authentication, lookup, metrics or security headers. No Node server can
 * answer faster on the same machine with the same load generator, so its ratio to the plain
 * provider bounds every ratio the benchmark can show. Prints one JSON line once listening.
 */
import { createServer } from 'node:http';

const body = JSON.stringify({ active: true, scope: process.argv[2] ?? 'orders:read', client_id: 'ceiling', token_type: 'Bearer' });
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${address.port}` })}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
