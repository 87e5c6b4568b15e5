// Part of `npm run build`: writes the embedded database template beside the compiled code
// (src/storage/embedded-template.ts says why), so a fresh install's first start skips initdb.
import { embeddedTemplatePath, writeEmbeddedTemplate } from '../dist/src/storage/embedded-template.js';

const started = performance.now();
const path = embeddedTemplatePath();
await writeEmbeddedTemplate(path);
console.log(`embedded database template written in ${Math.round(performance.now() - started)} ms: ${path}`);
