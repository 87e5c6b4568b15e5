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

/** RFC 6749 §3.2: parameters must not be repeated. */
export function single(params: URLSearchParams, name: string): string | undefined {
  const values = params.getAll(name);
  if (values.length > 1) throw invalidRequest(`'${name}' parameter must not be provided twice`);
  return values[0];
}
