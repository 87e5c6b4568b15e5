#!/usr/bin/env node
/**
 * The `tessera` command's entry point. Before any other module loads, it turns on Node's module
 * compile cache (V8's compiled code, kept on disk beside the compiled JavaScript), which the build
 * fills (scripts/embedded-template.mjs): compiling Tessera's and its dependencies' modules was
 * about a second of every start on a 2-core machine, and a start that finds them cached skips
 * most of it. Only the compiled code uses it (under tsx the sources change as they are edited),
 * and a cache that cannot be written (a read-only install) costs nothing: Node then just compiles.
 */
import module from 'node:module';
import { fileURLToPath } from 'node:url';

const enableCompileCache = (module as { enableCompileCache?: (directory: string) => unknown }).enableCompileCache;
if (import.meta.url.endsWith('.js')) enableCompileCache?.(fileURLToPath(new URL('../.compile-cache', import.meta.url)));

await import('./cli-commands.js');
