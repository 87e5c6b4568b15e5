import type { IncomingMessage } from 'node:http';

import { invalidRequest, OAuthError } from './oauth-error.js';

/** oidc-provider's own limit for form bodies; the same bound applies on Tessera's paths. */
export const FORM_BODY_LIMIT = 56 * 1024;

/**
 * Reads an `application/x-www-form-urlencoded` body (RFC 6749 §4.1.3, RFC 7662 §2.1) with a
 * size bound. The raw text is left on `req.body` so oidc-provider, when a request is handed on
 * to it, reads the same parameters instead of a drained stream.
 */
export async function readFormBody(req: IncomingMessage & { body?: unknown }): Promise<URLSearchParams> {
  if (typeof req.body === 'string') return new URLSearchParams(req.body);
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw invalidRequest('only application/x-www-form-urlencoded content-type bodies are supported');
  }
  const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
  if (declared !== undefined && declared > FORM_BODY_LIMIT) throw new OAuthError(413, 'invalid_request', 'request body too large');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > FORM_BODY_LIMIT) throw new OAuthError(413, 'invalid_request', 'request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  req.body = text;
  return new URLSearchParams(text);
}

/**
 * Reads a request body (Node stops at content-length) and calls back once with its text; with
 * callbacks rather than a Promise, so a fast path can answer in the same tick as the last chunk.
 */
export function readBodyText(req: IncomingMessage, done: (text: string) => void, failed: (error: Error) => void): void {
  let first: Buffer | undefined;
  let more: Buffer[] | undefined;
  req.on('data', (chunk: Buffer) => {
    if (first === undefined) first = chunk;
    else (more ??= [first]).push(chunk);
  });
  req.once('end', () => done(more ? Buffer.concat(more).toString('utf8') : (first?.toString('utf8') ?? '')));
  req.once('error', failed);
}

/** What Tessera reads from a form: URLSearchParams, or the cheaper SimpleForm below. */
export type FormParams = Pick<URLSearchParams, 'getAll' | 'has' | 'get'>;

/**
 * An `application/x-www-form-urlencoded` body without escapes (no `%`, no `+`), which is what
 * every introspection or revocation request carries in practice: tokens and client ids are
 * URL-safe by construction. Splitting it costs a fraction of URLSearchParams and gives the same
 * pairs (WHATWG URL "application/x-www-form-urlencoded parsing": split on `&`, skip empty
 * sequences, split each on the first `=`); anything with an escape goes to URLSearchParams.
 */
class SimpleForm implements FormParams {
  private readonly pairs: string[] = [];

  constructor(text: string) {
    let start = 0;
    while (start <= text.length) {
      let end = text.indexOf('&', start);
      if (end === -1) end = text.length;
      if (end > start) {
        const eq = text.indexOf('=', start);
        if (eq === -1 || eq > end) this.pairs.push(text.slice(start, end), '');
        else this.pairs.push(text.slice(start, eq), text.slice(eq + 1, end));
      }
      start = end + 1;
    }
  }

  getAll(name: string): string[] {
    const values: string[] = [];
    for (let i = 0; i < this.pairs.length; i += 2) if (this.pairs[i] === name) values.push(this.pairs[i + 1]!);
    return values;
  }

  get(name: string): string | null {
    for (let i = 0; i < this.pairs.length; i += 2) if (this.pairs[i] === name) return this.pairs[i + 1]!;
    return null;
  }

  has(name: string): boolean {
    return this.get(name) !== null;
  }
}

/** The parameters of a form body, parsed the cheap way when it has no escapes. */
export function parseForm(text: string): FormParams {
  // URLSearchParams also drops a leading `?` (it accepts query strings): leave such bodies to it.
  return text.includes('%') || text.includes('+') || text.startsWith('?') ? new URLSearchParams(text) : new SimpleForm(text);
}

/** RFC 6749 §3.2: parameters must not be repeated. */
export function single(params: FormParams, name: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw invalidRequest(`'${name}' parameter must not be provided twice`);
  return values[0];
}
