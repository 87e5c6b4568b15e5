/**
 * `npm run bench:start [-- --runs N]`: how long the embedded default takes from `node
 * dist/src/cli.js serve` (what `npm start` runs) to its first discovery answer, on a fresh data
 * directory (first start after install: the build's database template is unpacked, the
 * organization and its keys are created) and on a restart. Each run uses a new directory; the
 * median counts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { CLI, freePort } from './processes.js';

const argv = process.argv.slice(2);
const RUNS = argv.includes('--runs') ? Number(argv[argv.indexOf('--runs') + 1]) : 5;

async function startOnce(dataDir: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd: dataDir, env: { PATH: process.env.PATH ?? '', PORT: String(port), TESSERA_DATA_DIR: join(dataDir, 'data') }, stdio: 'ignore' });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}`);
      const ok = await fetch(`http://127.0.0.1:${port}/.well-known/openid-configuration`).then((r) => r.ok, () => false);
      if (ok) return performance.now() - started;
      if (performance.now() - started > 120_000) throw new Error('no discovery answer within 120 s');
      await sleep(20);
    }
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const fresh: number[] = [];
const restart: number[] = [];
for (let i = 0; i < RUNS; i += 1) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-start-'));
  try {
    fresh.push(await startOnce(dir));
    restart.push(await startOnce(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stderr.write(`[start] run ${i + 1}: first start ${Math.round(fresh.at(-1)!)} ms, restart ${Math.round(restart.at(-1)!)} ms\n`);
}
const load = (await import('node:fs')).readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`embedded default, node dist/src/cli.js serve to first discovery answer, Node ${process.version}, median of ${RUNS}: first start ${Math.round(median(fresh))} ms (target ≤ 3,000 ms: ${median(fresh) <= 3000 ? 'met' : 'not met'}), restart ${Math.round(median(restart))} ms; load average ${load}`);
