/**
 * The load generator, in its own process so it never shares the server's event loop. Takes one
 * JSON argument ({url, method, headers, body | bodies, connections, durationSeconds,
 * warmupSeconds}) and prints one JSON line: requests/s, p50 and p99 latency (ms), errors.
 * With `bodies`, successive requests cycle through them (many distinct tokens).
 */
import autocannon from 'autocannon';

interface LoadSpec {
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body?: string;
  bodies?: string[];
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
}

const spec = JSON.parse(process.argv[2]!) as LoadSpec;

function run(durationSeconds: number): Promise<autocannon.Result> {
  let next = 0;
  return autocannon({
    url: spec.url,
    method: spec.method,
    headers: spec.headers,
    connections: spec.connections,
    duration: durationSeconds,
    ...(spec.bodies
      ? {
          requests: [
            {
              setupRequest: (request: Record<string, unknown>) => {
                request.body = spec.bodies![next++ % spec.bodies!.length];
                return request;
              },
            },
          ],
        }
      : { body: spec.body }),
  } as autocannon.Options);
}

if (spec.warmupSeconds > 0) await run(spec.warmupSeconds);
const result = await run(spec.durationSeconds);
process.stdout.write(
  `${JSON.stringify({
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    total: result.requests.total,
  })}\n`,
);
