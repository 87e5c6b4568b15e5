/**
 * The project's own docs stay walkable: every relative link in README.md and docs/*.md reaches a
 * file of the repository (and, for `#anchor`, a heading of that file), the README links every
 * page of docs/, and the scanner expression docs/design.md gives matches the tokens Tessera makes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { generateToken } from '../../src/tokens/format.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOCS = join(ROOT, 'docs');
const pages = [join(ROOT, 'README.md'), ...readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => join(DOCS, f))];

/** The text outside fenced code blocks and inline code, where `[text](target)` is a link. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

function links(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1]!);
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  for (const [, heading] of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = heading!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    found.add(n === 0 ? base : `${base}-${n}`);
  }
  return found;
}

const isExternal = (target: string) => /^[a-z][a-z0-9+.-]*:/i.test(target);

describe('project docs', () => {
  it.each(pages.map((p) => [relative(ROOT, p), p]))('%s: every relative link reaches a file and heading of the repository', (_name, page) => {
    const text = readFileSync(page, 'utf8');
    const broken: string[] = [];
    for (const target of links(text)) {
      if (isExternal(target)) continue;
      if (target.startsWith('/')) {
        broken.push(`${target}: absolute; link relative to the page`);
        continue;
      }
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? page : resolve(dirname(page), decodeURIComponent(path));
      if (relative(ROOT, file).startsWith('..')) broken.push(`${target}: outside the repository`);
      else if (!existsSync(file)) broken.push(`${target}: no such file`);
      else if (anchor !== undefined && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${target}: no such heading`);
    }
    expect(broken).toEqual([]);
  });

  it('the README links every page of docs/', () => {
    const linked = new Set(links(readFileSync(join(ROOT, 'README.md'), 'utf8')).map((t) => resolve(ROOT, t.split('#')[0]!)));
    expect(pages.slice(1).filter((p) => !linked.has(p)).map((p) => relative(ROOT, p))).toEqual([]);
  });

  it('the scanner expression of docs/design.md finds every kind of token Tessera makes, and nothing longer', () => {
    const design = readFileSync(join(DOCS, 'design.md'), 'utf8');
    const source = /```\n(\\btsr_[^\n]+)\n```/.exec(design)?.[1];
    expect(source).toBeDefined();
    // The README gives scanners the same expression.
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(`\n${source!}\n`);
    const scanner = new RegExp(source!, 'g');
    for (const kind of ['pat', 'sat', 'rk'] as const) {
      const token = generateToken(kind);
      expect(`export TOKEN=${token}\n`.match(scanner)).toEqual([token]);
      expect(`x${token}y`.match(scanner)).toBeNull();
    }
  });
});
