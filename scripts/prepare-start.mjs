// Part of `npm run build`: what makes a fresh install's first start fast, made beside the
// compiled code.
// 1. The embedded database template (src/storage/embedded-template.ts says why), so the first
//    start skips initdb.
// 2. Node's module compile cache (src/cli.ts says why), filled by loading the command once.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { embeddedTemplatePath, writeEmbeddedTemplate } from '../dist/src/storage/embedded-template.js';

let started = performance.now();
const path = embeddedTemplatePath();
await writeEmbeddedTemplate(path);
console.log(`embedded database template written in ${Math.round(performance.now() - started)} ms: ${path}`);

started = performance.now();
const cli = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
const loaded = spawnSync(process.execPath, [cli, '--help'], { stdio: ['ignore', 'ignore', 'inherit'] });
if (loaded.status !== 0) throw new Error(`node dist/src/cli.js --help exited with ${loaded.status}`);
console.log(`module compile cache filled in ${Math.round(performance.now() - started)} ms`);
