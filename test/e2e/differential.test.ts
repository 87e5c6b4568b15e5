/**
 * The differential suite: for every token kind × caller authentication method × failure, the
 * fast path, the Koa path and — where it applies — the plain engine give the same status, headers
 * and body. Tessera answers introspection and client-credentials grants from plain Node handlers
 * in front of Koa (src/tokens/introspection-fast-path.ts, src/oidc/token-fast-path.ts), which
 * promise the Koa path's answers (README "Introspection fast path": byte-identical); this suite
 * holds every path to that, and fails when one drifts.
 *
 * How a request is sent down each path, against one server and its state (no production switch):
 * - fast: the ordinary request (urlencoded, with Content-Length). The fast path answers it or
 *   hands it to Koa, as it would in production.
 * - koa: the same request with its body chunked (Transfer-Encoding, no Content-Length). Both fast
 *   paths hand on a request without a positive Content-Length before reading it, and Koa reads
 *   either framing alike (src/http/form-body.ts). Each such request is checked to have been
 *   answered by neither fast path.
 * - engine: the same request to a second listener, opened by this test, serving
 *   `tessera.provider`: the engine as Tessera configures it, with its in-engine steps
 *   (src/oidc/provider.ts), without anything Tessera runs in front of it. It applies where the
 *   engine decides the answer: a refresh token (the engine's own), a failed client authentication
 *   (Tessera's authenticator promises the engine's answer, src/http/oauth-error.ts
 *   `invalidClient`), and the client-credentials grant (the engine writes it on every path). It
 *   does not apply to a previous secret inside its grace (a step in front of the engine,
 *   src/oidc/secret-grace.ts), nor to an access token's answer, which Tessera restricts by
 *   audience and organization (src/tokens/introspection.ts) while the engine tells only the
 *   token's own client.
 *
 * Compared: the status; every response header but `date` (the clock), `x-request-id` as "echoes
 * the id sent"; the body byte for byte. The engine's listener runs without the Koa middlewares
 * that add the request id and the security headers (src/http/middleware.ts), so those are
 * compared between Tessera's two paths only. A /token success carries a new token each time: its
 * token is replaced by its shape (a JWT's header and claims, `jti` by its type, `iat` and `exp` by
 * the lifetime) before the bytes are compared. A previous secret used inside its grace must also
 * leave one `client.previous_secret_used` audit event per request on every path (README "Secret
 * rotation": every use is audited).
 *
 * The caller at introspection is the introspection client of the token's API, registered for the
 * method of the cell (for a refresh token: the client holding it); at /token, a client-credentials
 * client. Failures, and where the plain engine applies (RT: for refresh tokens only):
 *
 * | failure                       | how                                                                     | methods | engine: introspection | /token |
 * | ----------------------------- | ----------------------------------------------------------------------- | ------- | --------------------- | ------ |
 * | valid                         | the right caller, a live token                                          | all     | RT                    | yes    |
 * | bad secret                    | the right caller, a wrong secret                                        | secrets | yes                   | yes    |
 * | previous secret in grace      | a caller rotated with a 1-day grace presents its previous secret        | secrets | no                    | no     |
 * | previous secret past grace    | a caller rotated with a 1 s grace, since over, presents its previous one | secrets | yes                   | yes    |
 * | other secret method           | a Basic-registered caller sends client_secret_post, and the other way   | secrets | RT                    | yes    |
 * | replayed assertion            | one assertion sent twice down the same path, the second answer compared  | pkjwt   | yes                   | yes    |
 * | assertion replayed across     | an assertion spent at /token (at introspection, for /token) down the     | pkjwt   | yes                   | yes    |
 * | endpoints                     | same path, then sent here                                               |         |                       |        |
 * | wrong audience                | the introspection client of another API of the organization; at /token, | all     | RT                    | yes    |
 * |                               | a resource the client is not allowed                                    |         |                       |        |
 * | other organization            | an API's introspection client in another organization; at /token,      | all     | RT                    | yes    |
 * |                               | another organization's resource                                         |         |                       |        |
 * | revoked                       | RFC 7009 for OAuth tokens, DELETE /tokens/{id} for PAT/SAT              | all     | RT                    | —      |
 * | expired                       | an API with a 1 s access-token TTL, a 1 s PAT/SAT, a 1 s refresh family | all     | RT                    | —      |
 * | stopped owner                 | user deactivated (PAT, code flow, refresh token), service account       | all     | RT                    | yes    |
 * |                               | disabled (SAT, client-credentials tokens; at /token, its clients)       |         |                       |        |
 *
 * Token kinds at introspection: PAT, SAT, code-flow JWT and opaque access tokens,
 * client-credentials JWT and opaque access tokens, refresh token. At /token: the client-credentials
 * grant for a JWT API and for an opaque API (a /token request carries no token to revoke or expire).
 *
 * Where the paths differ today is listed in KNOWN_DRIFT, with exactly the facets that differ; a
 * listed cell fails unless exactly those still differ, so entries go as the paths converge.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { rotateClientSecret, sealNewSecret } from '../../src/domain/client-secrets.js';
import { newId } from '../../src/storage/ids.js';
import { backends } from '../helpers/backends.js';
import { createOrganization, createServiceAccount, expectApi, uniqueName } from '../helpers/management.js';
import { startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';
import { addUser, browserless, CALLBACK, SERVER_START_TIMEOUT_MS, signIn } from '../helpers/sign-in.js';
import type { Browserless } from '../helpers/sign-in.js';

// ---------------------------------------------------------------------------------------
// The matrix

const METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;
type Method = (typeof METHODS)[number];
type SecretMethod = Exclude<Method, 'private_key_jwt'>;
const isSecretMethod = (m: Method): m is SecretMethod => m !== 'private_key_jwt';

const INTROSPECTION_KINDS = ['PAT', 'SAT', 'code-flow JWT', 'code-flow opaque', 'client-credentials JWT', 'client-credentials opaque', 'refresh token'] as const;
type IntrospectionKind = (typeof INTROSPECTION_KINDS)[number];
type AccessKind = Exclude<IntrospectionKind, 'refresh token'>;
const TOKEN_KINDS = ['client-credentials JWT', 'client-credentials opaque'] as const;
type GrantKind = (typeof TOKEN_KINDS)[number];

const FAILURES = [
  'valid',
  'bad secret',
  'previous secret in grace',
  'previous secret past grace',
  'other secret method',
  'replayed assertion',
  'assertion replayed across endpoints',
  'wrong audience',
  'other organization',
  'revoked',
  'expired',
  'stopped owner',
] as const;
type Failure = (typeof FAILURES)[number];

type PathName = 'fast' | 'koa' | 'engine';

const SECRET_ONLY: ReadonlySet<Failure> = new Set(['bad secret', 'previous secret in grace', 'previous secret past grace', 'other secret method']);
const ASSERTION_ONLY: ReadonlySet<Failure> = new Set(['replayed assertion', 'assertion replayed across endpoints']);
/**
 * Failures the engine decides alone, whatever the token: client authentication that fails. (The
 * other secret method is not one: the engine accepts either secret method of a client registered
 * for one, as it does any method of the registered class.)
 */
const CLIENT_AUTHENTICATION: ReadonlySet<Failure> = new Set(['bad secret', 'previous secret past grace', 'replayed assertion', 'assertion replayed across endpoints']);
/** A request to /token carries no token: nothing to revoke or expire. */
const NOT_AT_TOKEN: ReadonlySet<Failure> = new Set(['revoked', 'expired']);

const applies = (method: Method, failure: Failure) => (isSecretMethod(method) ? !ASSERTION_ONLY.has(failure) : !SECRET_ONLY.has(failure));

interface IntrospectionCell {
  endpoint: 'introspection';
  kind: IntrospectionKind;
  method: Method;
  failure: Failure;
  paths: PathName[];
  id: string;
}
interface TokenCell {
  endpoint: 'token';
  kind: GrantKind;
  method: Method;
  failure: Failure;
  paths: PathName[];
  id: string;
}
type Cell = IntrospectionCell | TokenCell;

const cellId = (endpoint: string, kind: string, method: Method, failure: Failure) => `${endpoint} · ${kind} · ${method} · ${failure}`;

const CELLS: Cell[] = [
  ...INTROSPECTION_KINDS.flatMap((kind) =>
    METHODS.flatMap((method) =>
      FAILURES.filter((failure) => applies(method, failure)).map((failure): IntrospectionCell => {
        const engine = failure !== 'previous secret in grace' && (kind === 'refresh token' || CLIENT_AUTHENTICATION.has(failure));
        return { endpoint: 'introspection', kind, method, failure, paths: engine ? ['fast', 'koa', 'engine'] : ['fast', 'koa'], id: cellId('introspection', kind, method, failure) };
      }),
    ),
  ),
  ...TOKEN_KINDS.flatMap((kind) =>
    METHODS.flatMap((method) =>
      FAILURES.filter((failure) => applies(method, failure) && !NOT_AT_TOKEN.has(failure)).map((failure): TokenCell => ({
        endpoint: 'token',
        kind,
        method,
        failure,
        paths: failure === 'previous secret in grace' ? ['fast', 'koa'] : ['fast', 'koa', 'engine'],
        id: cellId('/token', kind, method, failure),
      })),
    ),
  ),
];

/**
 * Where the paths differ today: each entry names its cells, exactly the facets that differ there
 * (`<path> status|body|audit`, `<path> header <name>`) and why. A cell an entry names fails unless
 * exactly these facets still differ, so an entry is removed when its defect is fixed; every other
 * cell must not differ at all.
 */
interface KnownDrift {
  why: string;
  cells: (cell: Cell) => boolean;
  facets: (cell: Cell) => string[];
}

// Tessera's own introspection and revocation answers now carry the engine's CORS headers
// (src/tokens/cross-origin.ts), which was the last listed drift.
const KNOWN_DRIFT: KnownDrift[] = [];

const expectedDrift = (cell: Cell) => {
  const entries = KNOWN_DRIFT.filter((entry) => entry.cells(cell));
  return { facets: [...new Set(entries.flatMap((entry) => entry.facets(cell)))].sort(), why: entries.map((entry) => entry.why).join('\n') };
};

// ---------------------------------------------------------------------------------------
// Fixtures

const ORDERS = 'https://orders.diff.test';
const BILLING = 'https://billing.diff.test';
const SHORT_JWT = 'https://short-jwt.diff.test';
const SHORT_OPAQUE = 'https://short-opaque.diff.test';
const INVENTORY = 'https://inventory.diff.test';
const PASSWORD = 'differential horse battery staple';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Long enough for every "previous secret in grace" request; the default policy's value. */
const LONG_GRACE_SECONDS = 86400;
/** Short lifetimes (access-token TTL, PAT/SAT, refresh family, secret grace) that are over before the cells run. */
const SHORT_SECONDS = 1;

/**
 * Organization A's APIs, from the seed: the 1 s access-token TTL is below the Management API's
 * 30 s floor. (The seed's introspection credentials go unused: the callers are registered per
 * method in `arrange`.) A 1 s refresh family likewise: the Management API allows 60 s at least, so
 * it is the configured default until organization A sets its own policy.
 */
const OVERRIDES = {
  policyDefaults: { refresh_absolute_lifetime_seconds: SHORT_SECONDS },
  seed: {
    resourceServers: [
      { identifier: ORDERS, name: 'Orders', scopes: ['orders:read'], token_format: 'jwt', introspection_client_id: 'diff-orders-rs', introspection_client_secret: randomBytes(24).toString('base64url') },
      { identifier: BILLING, name: 'Billing', scopes: ['billing:read'], token_format: 'opaque', introspection_client_id: 'diff-billing-rs', introspection_client_secret: randomBytes(24).toString('base64url') },
      { identifier: SHORT_JWT, name: 'Short JWT', scopes: ['shortjwt:read'], token_format: 'jwt', access_token_ttl: SHORT_SECONDS, introspection_client_id: 'diff-short-jwt-rs', introspection_client_secret: randomBytes(24).toString('base64url') },
      { identifier: SHORT_OPAQUE, name: 'Short opaque', scopes: ['shortopaque:read'], token_format: 'opaque', access_token_ttl: SHORT_SECONDS, introspection_client_id: 'diff-short-opaque-rs', introspection_client_secret: randomBytes(24).toString('base64url') },
      { identifier: INVENTORY, name: 'Inventory', scopes: ['inventory:read'], token_format: 'jwt', introspection_client_id: 'diff-inventory-rs', introspection_client_secret: randomBytes(24).toString('base64url') },
    ],
    clients: [],
  },
};
const OAUTH_RESOURCES = [ORDERS, BILLING, SHORT_JWT, SHORT_OPAQUE];
const OAUTH_SCOPES = ['orders:read', 'billing:read', 'shortjwt:read', 'shortopaque:read'];

type Audience = 'orders' | 'billing' | 'shortJwt' | 'shortOpaque' | 'inventory' | 'foreign';

interface Caller {
  clientId: string;
  organizationId: string;
  method: Method;
  /** The current secret (secret methods). */
  secret?: string;
  /** The secret a rotation replaced (rotated callers). */
  previousSecret?: string;
}

type State = 'live' | 'revoked' | 'expired' | 'stopped';

interface Fixtures {
  server: TestServer;
  engine: Server;
  mainPort: number;
  enginePort: number;
  /** The issuer's host, sent as Host on every path so the engine sees the same request. */
  host: string;
  organizationId: string;
  signingKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  /** Per API, one introspection client per authentication method. */
  callers: Record<Audience, Record<Method, Caller>>;
  /** Introspection clients of Orders and Billing whose secret was rotated. */
  rotatedCallers: Record<'orders' | 'billing', Record<SecretMethod, Record<'inGrace' | 'pastGrace', Caller>>>;
  /** Sign-in clients holding refresh tokens, per method, and rotated ones. */
  holders: Record<Method, Caller>;
  rotatedHolders: Record<SecretMethod, Record<'inGrace' | 'pastGrace', Caller>>;
  /** Client-credentials clients, per method; rotated ones; ones owned by a disabled service account. */
  machines: Record<Method, Caller>;
  rotatedMachines: Record<SecretMethod, Record<'inGrace' | 'pastGrace', Caller>>;
  stoppedMachines: Record<Method, Caller>;
  foreignResource: { identifier: string; scope: string };
  access: Record<AccessKind, Record<State, string>>;
  refresh: Record<Method, Record<State, string>>;
  rotatedRefresh: Record<SecretMethod, Record<'inGrace' | 'pastGrace', string>>;
  /** A token any authenticated caller may send, to spend an assertion at introspection. */
  anyToken: string;
}

const basicHeader = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const otherSecretMethod = (m: SecretMethod): SecretMethod => (m === 'client_secret_basic' ? 'client_secret_post' : 'client_secret_basic');

// ---------------------------------------------------------------------------------------
// Sending one request down one path

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
  requestId: string;
  /** Whether a fast path answered it (fast-path statistics of the app). */
  answeredByFastPath: boolean;
}

/** How a request authenticates its client. */
interface Presentation {
  as: Method;
  secret?: string;
  assertion?: string;
}

let requestCounter = 0;

function rawPost(port: number, host: string, path: string, headers: Record<string, string>, body: string, chunked: boolean): Promise<Omit<Answer, 'requestId' | 'answeredByFastPath'>> {
  return new Promise((resolve, reject) => {
    const framing: Record<string, string> = chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(Buffer.byteLength(body)) };
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: { host, ...headers, ...framing } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode!, headers: flatten(res.headers), body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.once('error', reject);
    req.write(body);
    req.end();
  });
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join('\n') : value;
  return out;
}

async function assertionFor(f: Fixtures, caller: Caller): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuer(caller.clientId)
    .setSubject(caller.clientId)
    // RFC 7523 §3: the issuer identifies the authorization server; both authenticators accept it.
    .setAudience(f.server.config.issuer)
    .setJti(randomBytes(16).toString('base64url'))
    .setIssuedAt()
    .setExpirationTime('2m')
    .sign(f.signingKey);
}

/** The client's credentials the way it is registered to present them, with a fresh assertion. */
async function registered(f: Fixtures, caller: Caller): Promise<Presentation> {
  return caller.method === 'private_key_jwt' ? { as: 'private_key_jwt', assertion: await assertionFor(f, caller) } : { as: caller.method, secret: caller.secret! };
}

async function send(f: Fixtures, path: PathName, endpoint: '/token' | '/token/introspection' | '/token/revocation', caller: Caller, presentation: Presentation, params: Record<string, string>): Promise<Answer> {
  const form = new URLSearchParams(params);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (presentation.as === 'client_secret_basic') headers.authorization = basicHeader(caller.clientId, presentation.secret!);
  if (presentation.as === 'client_secret_post') {
    form.set('client_id', caller.clientId);
    form.set('client_secret', presentation.secret!);
  }
  if (presentation.as === 'private_key_jwt') {
    form.set('client_assertion_type', JWT_BEARER);
    form.set('client_assertion', presentation.assertion!);
  }
  const requestId = `diff-${++requestCounter}-${randomBytes(4).toString('hex')}`;
  headers['x-request-id'] = requestId;
  const { tessera } = f.server;
  const answeredBefore = tessera.fastPathStats.answered + tessera.tokenFastPathStats.answered;
  const port = path === 'engine' ? f.enginePort : f.mainPort;
  const raw = await rawPost(port, f.host, endpoint, headers, form.toString(), path === 'koa');
  const answeredByFastPath = tessera.fastPathStats.answered + tessera.tokenFastPathStats.answered > answeredBefore;
  // The suite means nothing if the Koa path's requests were answered by a fast path.
  if (path === 'koa' && answeredByFastPath) throw new Error(`a chunked request to ${endpoint} was answered by a fast path`);
  return { ...raw, requestId, answeredByFastPath };
}

// ---------------------------------------------------------------------------------------
// Running a cell

/** The token and the caller of an introspection cell, and how the caller presents itself. */
async function introspectionSubject(f: Fixtures, cell: IntrospectionCell): Promise<{ token: string; caller: Caller; presentation: Presentation }> {
  const { kind, method, failure } = cell;
  const group: 'orders' | 'billing' = kind.endsWith('opaque') ? 'billing' : 'orders';
  const refresh = kind === 'refresh token';
  const state: State = failure === 'revoked' || failure === 'expired' ? failure : failure === 'stopped owner' ? 'stopped' : 'live';
  const token = refresh ? f.refresh[method][state] : f.access[kind as AccessKind][state];
  const expiredAudience: Audience = kind === 'PAT' || kind === 'SAT' ? 'orders' : group === 'orders' ? 'shortJwt' : 'shortOpaque';
  let caller = refresh ? f.holders[method] : f.callers[state === 'expired' ? expiredAudience : group][method];
  if (failure === 'wrong audience') caller = f.callers.inventory[method];
  if (failure === 'other organization') caller = f.callers.foreign[method];
  if (failure === 'previous secret in grace' || failure === 'previous secret past grace') {
    const which = failure === 'previous secret in grace' ? 'inGrace' : 'pastGrace';
    const m = method as SecretMethod;
    caller = refresh ? f.rotatedHolders[m][which] : f.rotatedCallers[group][m][which];
    return { token: refresh ? f.rotatedRefresh[m][which] : token, caller, presentation: { as: m, secret: caller.previousSecret! } };
  }
  if (failure === 'bad secret') return { token, caller, presentation: { as: method, secret: `${caller.secret!}x` } };
  if (failure === 'other secret method') return { token, caller, presentation: { as: otherSecretMethod(method as SecretMethod), secret: caller.secret! } };
  return { token, caller, presentation: await registered(f, caller) };
}

async function runIntrospection(f: Fixtures, cell: IntrospectionCell, path: PathName): Promise<Answer> {
  const { token, caller, presentation } = await introspectionSubject(f, cell);
  if (cell.failure === 'replayed assertion') {
    await send(f, path, '/token/introspection', caller, presentation, { token });
  } else if (cell.failure === 'assertion replayed across endpoints') {
    // Spent at /token down the same path first: client authentication runs before the grant is
    // looked at, so the assertion is used there even though the client may not use this grant.
    await send(f, path, '/token', caller, presentation, { grant_type: 'client_credentials' });
  }
  return send(f, path, '/token/introspection', caller, presentation, { token });
}

function grantSubject(f: Fixtures, cell: TokenCell): { caller: Caller; params: Record<string, string> } {
  const { kind, method, failure } = cell;
  const [resource, scope] = kind === 'client-credentials JWT' ? [ORDERS, 'orders:read'] : [BILLING, 'billing:read'];
  let caller = f.machines[method];
  let params = { grant_type: 'client_credentials', resource, scope };
  if (failure === 'wrong audience') params = { ...params, resource: INVENTORY, scope: 'inventory:read' };
  if (failure === 'other organization') params = { ...params, resource: f.foreignResource.identifier, scope: f.foreignResource.scope };
  if (failure === 'stopped owner') caller = f.stoppedMachines[method];
  if (failure === 'previous secret in grace') caller = f.rotatedMachines[method as SecretMethod].inGrace;
  if (failure === 'previous secret past grace') caller = f.rotatedMachines[method as SecretMethod].pastGrace;
  return { caller, params };
}

async function runGrant(f: Fixtures, cell: TokenCell, path: PathName): Promise<Answer> {
  const { caller, params } = grantSubject(f, cell);
  let presentation = await registered(f, caller);
  if (cell.failure === 'bad secret') presentation = { as: cell.method, secret: `${caller.secret!}x` };
  if (cell.failure === 'previous secret in grace' || cell.failure === 'previous secret past grace') presentation = { as: cell.method, secret: caller.previousSecret! };
  if (cell.failure === 'other secret method') presentation = { as: otherSecretMethod(cell.method as SecretMethod), secret: caller.secret! };
  if (cell.failure === 'replayed assertion') await send(f, path, '/token', caller, presentation, params);
  if (cell.failure === 'assertion replayed across endpoints') await send(f, path, '/token/introspection', caller, presentation, { token: f.anyToken });
  return send(f, path, '/token', caller, presentation, params);
}

/** A new access token per request: compared by its shape (a JWT's header and claims, its lifetime instead of its times). */
function tokenShape(token: unknown): unknown {
  if (typeof token !== 'string') return token;
  try {
    const header = decodeProtectedHeader(token);
    const { jti, iat, exp, ...claims } = decodeJwt(token);
    return { jwt: { header, claims: { ...claims, jti: typeof jti, lifetime: (exp ?? 0) - (iat ?? 0) } } };
  } catch {
    return { opaque: token.length };
  }
}

function comparableBody(cell: Cell, answer: Answer): string {
  if (cell.endpoint === 'introspection' && answer.status === 200 && answer.body.includes('"expires_in"')) {
    // A PAT/SAT's remaining lifetime counts down each second: two paths asked a moment apart may
    // straddle one. Compared by its type, as new tokens are compared by their shape.
    const parsed = JSON.parse(answer.body) as Record<string, unknown>;
    parsed.expires_in = typeof parsed.expires_in;
    return JSON.stringify(parsed);
  }
  if (cell.endpoint !== 'token' || answer.status !== 200) return answer.body;
  const parsed = JSON.parse(answer.body) as Record<string, unknown>;
  // Replaced in place, so the members keep the order the path wrote them in.
  if ('access_token' in parsed) parsed.access_token = tokenShape(parsed.access_token);
  return JSON.stringify(parsed);
}

/** Headers Tessera's Koa stack adds around the engine (src/http/middleware.ts): absent on the plain engine's listener. */
const KOA_STACK_HEADERS = new Set(['x-request-id', 'x-content-type-options', 'referrer-policy', 'x-frame-options', 'content-security-policy', 'strict-transport-security']);

function comparableHeaders(path: PathName, answer: Answer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(answer.headers)) {
    if (name === 'date') continue;
    if (path === 'engine' && KOA_STACK_HEADERS.has(name)) continue;
    out[name] = name === 'x-request-id' && value === answer.requestId ? '<the id sent>' : value;
  }
  return out;
}

/** The facets in which `other` differs from the fast path's answer, each with both values. */
function drift(cell: Cell, answers: Partial<Record<PathName, Answer>>): Record<string, string> {
  const reference = answers.fast!;
  const out: Record<string, string> = {};
  for (const path of cell.paths) {
    if (path === 'fast') continue;
    const other = answers[path]!;
    if (other.status !== reference.status) out[`${path} status`] = `fast ${reference.status}, ${path} ${other.status}`;
    const [a, b] = [comparableBody(cell, reference), comparableBody(cell, other)];
    if (a !== b) out[`${path} body`] = `fast ${a} | ${path} ${b}`;
    const referenceHeaders = comparableHeaders(path, reference);
    const otherHeaders = comparableHeaders(path, other);
    for (const name of new Set([...Object.keys(referenceHeaders), ...Object.keys(otherHeaders)])) {
      // The engine listener never adds the Koa stack's headers: compare those only between Tessera's paths.
      if (path === 'engine' && KOA_STACK_HEADERS.has(name)) continue;
      if (referenceHeaders[name] !== otherHeaders[name]) out[`${path} header ${name}`] = `fast ${referenceHeaders[name] ?? '(absent)'}, ${path} ${otherHeaders[name] ?? '(absent)'}`;
    }
  }
  return out;
}

/** README "Secret rotation": each use of a previous secret is one `client.previous_secret_used` event. */
async function previousSecretAudit(f: Fixtures, caller: Caller, answers: Partial<Record<PathName, Answer>>): Promise<Record<string, string>> {
  const { tessera } = f.server;
  await tessera.audit.flush();
  const events = await tessera.auditRepository.list({ organizationId: caller.organizationId, action: 'client.previous_secret_used', actorId: caller.clientId, limit: 10_000 });
  const out: Record<string, string> = {};
  for (const [path, answer] of Object.entries(answers)) {
    const count = events.filter((e) => e.request_id === answer.requestId).length;
    if (count !== 1) out[`${path} audit`] = `${count} client.previous_secret_used events for the request, not 1`;
  }
  return out;
}

function callerOf(f: Fixtures, cell: Cell): Caller {
  if (cell.endpoint === 'token') return grantSubject(f, cell).caller;
  const refresh = cell.kind === 'refresh token';
  const m = cell.method as SecretMethod;
  return refresh ? f.rotatedHolders[m].inGrace : f.rotatedCallers[cell.kind.endsWith('opaque') ? 'billing' : 'orders'][m].inGrace;
}

// ---------------------------------------------------------------------------------------
// Arranging the state every cell reads

async function arrange(backend: TestServer['backend']): Promise<Fixtures> {
  const server = await startTestServer(backend, { overrides: OVERRIDES });
  const admin = server.managementToken;
  const organizationId = server.bootstrap.organization_id;
  const { tessera } = server;
  const engineHandler = tessera.provider.callback();
  const engine = createServer((req, res) => engineHandler(req, res));
  await new Promise<void>((resolve) => engine.listen(0, '127.0.0.1', () => resolve()));
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };

  const f = {
    server,
    engine,
    mainPort: Number(new URL(server.url).port),
    enginePort: (engine.address() as AddressInfo).port,
    host: new URL(server.config.issuer).host,
    organizationId,
    signingKey: privateKey,
  } as Fixtures;

  const policy = (changes: Record<string, unknown>) => expectApi(server, admin, 'PATCH', '/organization', { policy: changes }, 200);

  // Introspection clients of an API, one per method, as the resource-server route registers its own
  // (src/management/routes/resource-servers.ts) but with the method under test.
  async function introspectionCaller(identifier: string, orgId: string, method: Method): Promise<Caller> {
    const rs = await tessera.repos.resourceServers.findByIdentifier(identifier);
    const clientId = newId('rsc');
    const sealed = isSecretMethod(method) ? sealNewSecret(tessera.envelope, clientId) : undefined;
    await tessera.repos.clients.insert({
      client_id: clientId,
      organization_id: orgId,
      kind: 'introspection',
      name: `${identifier} (introspection, ${method})`,
      resource_server_id: rs!.id,
      service_account_id: null,
      metadata: { grant_types: [], response_types: [], redirect_uris: [], token_endpoint_auth_method: method, ...(sealed ? {} : { jwks }) },
      allowed_scopes: [],
      allowed_resources: [],
      secret_enc: sealed?.sealed ?? null,
      registration: false,
    });
    return { clientId, organizationId: orgId, method, secret: sealed?.secret };
  }
  const forEachMethod = async <T>(make: (m: Method) => Promise<T>): Promise<Record<Method, T>> =>
    Object.fromEntries(await Promise.all(METHODS.map(async (m) => [m, await make(m)] as const))) as Record<Method, T>;
  const forEachSecretMethod = async <T>(make: (m: SecretMethod) => Promise<T>): Promise<Record<SecretMethod, T>> =>
    Object.fromEntries(await Promise.all((['client_secret_basic', 'client_secret_post'] as const).map(async (m) => [m, await make(m)] as const))) as Record<SecretMethod, T>;

  /** An introspection client's rotation, as POST /resource-servers/{id}/credentials does it, with the grace given. */
  async function rotateCaller(caller: Caller, graceSeconds: number): Promise<Caller> {
    const record = await tessera.repos.clients.findById(caller.clientId);
    const rotated = await rotateClientSecret({ clients: tessera.repos.clients, envelope: tessera.envelope, clock: tessera.clock }, record!, graceSeconds);
    tessera.clients.invalidate(caller.clientId);
    return { ...caller, secret: rotated.secret, previousSecret: caller.secret };
  }
  /** An OAuth client's rotation through the Management API, with the organization's grace. */
  async function rotateClient(caller: Caller): Promise<Caller> {
    const rotated = await expectApi(server, admin, 'POST', `/clients/${caller.clientId}/secret`, {}, 200);
    return { ...caller, secret: rotated.client_secret, previousSecret: caller.secret };
  }
  async function oauthClient(method: Method, shape: Record<string, unknown>): Promise<Caller> {
    const created = await expectApi(server, admin, 'POST', '/clients', {
      name: uniqueName('diff'),
      token_endpoint_auth_method: method,
      scopes: OAUTH_SCOPES,
      resources: OAUTH_RESOURCES,
      ...(method === 'private_key_jwt' ? { jwks } : {}),
      ...shape,
    }, 201);
    return { clientId: created.client_id, organizationId, method, secret: created.client_secret };
  }
  const holder = (method: Method) => oauthClient(method, { grant_types: ['authorization_code', 'refresh_token'], redirect_uris: [CALLBACK], scopes: ['openid', 'offline_access', ...OAUTH_SCOPES] });
  const machine = (method: Method, serviceAccountId?: string) => oauthClient(method, { grant_types: ['client_credentials'], ...(serviceAccountId ? { service_account_id: serviceAccountId } : {}) });

  async function tokenRequest(caller: Caller, params: Record<string, string>): Promise<Record<string, string>> {
    const answer = await send(f, 'fast', '/token', caller, await registered(f, caller), params);
    if (answer.status !== 200) throw new Error(`/token for ${caller.clientId}: ${answer.status} ${answer.body}`);
    return JSON.parse(answer.body) as Record<string, string>;
  }
  const clientCredentials = async (caller: Caller, resource: string, scope: string) => (await tokenRequest(caller, { grant_type: 'client_credentials', resource, scope })).access_token!;
  async function revoke(caller: Caller, token: string, hint?: string): Promise<void> {
    const answer = await send(f, 'fast', '/token/revocation', caller, await registered(f, caller), { token, ...(hint ? { token_type_hint: hint } : {}) });
    if (answer.status !== 200) throw new Error(`revocation by ${caller.clientId}: ${answer.status} ${answer.body}`);
  }

  /** A user signed in on the pages; `grant` runs an authorization code flow with PKCE through `client`. */
  async function user() {
    const username = uniqueName('user');
    const id = await addUser(server, { username, password: PASSWORD });
    const b: Browserless = browserless(server);
    async function grant(client: Caller, resource: string, scope: string, offline: boolean) {
      const verifier = randomBytes(32).toString('base64url');
      const url = new URL('/auth', server.url);
      url.search = new URLSearchParams({
        client_id: client.clientId,
        response_type: 'code',
        redirect_uri: CALLBACK,
        scope: offline ? `openid offline_access ${scope}` : `openid ${scope}`,
        resource,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
        state: randomBytes(8).toString('hex'),
        // OpenID Connect Core §11: offline_access is honoured together with prompt=consent.
        ...(offline ? { prompt: 'consent' } : {}),
      }).toString();
      const { callback } = await signIn(b, url.href, username, PASSWORD);
      const code = callback.searchParams.get('code');
      if (!code) throw new Error(`no code: ${callback.href}`);
      return tokenRequest(client, { grant_type: 'authorization_code', code, redirect_uri: CALLBACK, code_verifier: verifier, resource });
    }
    return { id, grant };
  }
  const pat = (userId: string, expiresInSeconds: number) =>
    tessera.referenceTokenIssuer.issue({ organizationId, type: 'pat', name: uniqueName('pat'), userId, scopes: ['orders:read'], resources: [ORDERS], expiresInSeconds, createdBy: 'test' });
  const sat = (serviceAccountId: string, expiresInSeconds: number) =>
    tessera.referenceTokenIssuer.issue({ organizationId, type: 'sat', name: uniqueName('sat'), serviceAccountId, scopes: ['orders:read'], resources: [ORDERS], expiresInSeconds, createdBy: 'test' });

  // Another organization with an API of its own and its introspection clients.
  const other = await createOrganization(server, admin);
  const foreignIdentifier = `https://${uniqueName('foreign')}.diff.test`;
  await expectApi(server, other.managementToken, 'POST', '/resource-servers', { identifier: foreignIdentifier, scopes: ['foreign:read'] }, 201);
  f.foreignResource = { identifier: foreignIdentifier, scope: 'foreign:read' };

  const identifiers: Record<Exclude<Audience, 'foreign'>, string> = { orders: ORDERS, billing: BILLING, shortJwt: SHORT_JWT, shortOpaque: SHORT_OPAQUE, inventory: INVENTORY };
  f.callers = Object.fromEntries(
    await Promise.all([
      ...Object.entries(identifiers).map(async ([audience, identifier]) => [audience, await forEachMethod((m) => introspectionCaller(identifier, organizationId, m))] as const),
      (async () => ['foreign', await forEachMethod((m) => introspectionCaller(foreignIdentifier, other.id, m))] as const)(),
    ]),
  ) as Fixtures['callers'];
  const toRotate = {
    orders: await forEachSecretMethod(async (m) => ({ inGrace: await introspectionCaller(ORDERS, organizationId, m), pastGrace: await introspectionCaller(ORDERS, organizationId, m) })),
    billing: await forEachSecretMethod(async (m) => ({ inGrace: await introspectionCaller(BILLING, organizationId, m), pastGrace: await introspectionCaller(BILLING, organizationId, m) })),
  };
  f.holders = await forEachMethod((m) => holder(m));
  const holdersToRotate = await forEachSecretMethod(async (m) => ({ inGrace: await holder(m), pastGrace: await holder(m) }));
  f.machines = await forEachMethod((m) => machine(m));
  const machinesToRotate = await forEachSecretMethod(async (m) => ({ inGrace: await machine(m), pastGrace: await machine(m) }));
  const liveAccount = await createServiceAccount(server, admin);
  const stoppedAccount = await createServiceAccount(server, admin);
  f.stoppedMachines = await forEachMethod((m) => machine(m, stoppedAccount.id));
  const [live, revoked, expired, stopped] = [await user(), await user(), await user(), await user()];

  // Everything short-lived first, so it is over by the time the cells run: a 1 s grace for the
  // "past grace" rotations; refresh families live 1 s until the policy below (OVERRIDES).
  await policy({ client_secret_rotation_grace_seconds: SHORT_SECONDS });
  const pastGraceCallers = {
    orders: await forEachSecretMethod(async (m) => rotateCaller(toRotate.orders[m].pastGrace, SHORT_SECONDS)),
    billing: await forEachSecretMethod(async (m) => rotateCaller(toRotate.billing[m].pastGrace, SHORT_SECONDS)),
  };
  const pastGraceHolders = await forEachSecretMethod((m) => rotateClient(holdersToRotate[m].pastGrace));
  const pastGraceMachines = await forEachSecretMethod((m) => rotateClient(machinesToRotate[m].pastGrace));
  const expiredCodeJwt = await expired.grant(f.holders.client_secret_basic, SHORT_JWT, 'shortjwt:read', true);
  const expiredCodeOpaque = await expired.grant(f.holders.client_secret_basic, SHORT_OPAQUE, 'shortopaque:read', false);
  const expiredRefresh: Record<Method, string> = { client_secret_basic: expiredCodeJwt.refresh_token! } as Record<Method, string>;
  for (const m of ['client_secret_post', 'private_key_jwt'] as const) expiredRefresh[m] = (await expired.grant(f.holders[m], SHORT_JWT, 'shortjwt:read', true)).refresh_token!;
  const expiredAccess = {
    pat: await pat(live.id, SHORT_SECONDS),
    sat: await sat(liveAccount.id, SHORT_SECONDS),
    ccJwt: await clientCredentials(f.machines.client_secret_basic, SHORT_JWT, 'shortjwt:read'),
    ccOpaque: await clientCredentials(f.machines.client_secret_basic, SHORT_OPAQUE, 'shortopaque:read'),
  };
  const shortLivedUntil = Date.now() + (SHORT_SECONDS + 1) * 1000;
  await policy({ client_secret_rotation_grace_seconds: LONG_GRACE_SECONDS, refresh_absolute_lifetime_seconds: 30 * 86400 });

  const inGraceCallers = {
    orders: await forEachSecretMethod(async (m) => rotateCaller(toRotate.orders[m].inGrace, LONG_GRACE_SECONDS)),
    billing: await forEachSecretMethod(async (m) => rotateCaller(toRotate.billing[m].inGrace, LONG_GRACE_SECONDS)),
  };
  f.rotatedCallers = {
    orders: await forEachSecretMethod(async (m) => ({ inGrace: inGraceCallers.orders[m], pastGrace: pastGraceCallers.orders[m] })),
    billing: await forEachSecretMethod(async (m) => ({ inGrace: inGraceCallers.billing[m], pastGrace: pastGraceCallers.billing[m] })),
  };
  f.rotatedHolders = await forEachSecretMethod(async (m) => ({ inGrace: await rotateClient(holdersToRotate[m].inGrace), pastGrace: pastGraceHolders[m] }));
  f.rotatedMachines = await forEachSecretMethod(async (m) => ({ inGrace: await rotateClient(machinesToRotate[m].inGrace), pastGrace: pastGraceMachines[m] }));

  // Code-flow tokens: each user's grants through the holders (one session per user).
  const codeFlow = async (u: Awaited<ReturnType<typeof user>>) => {
    const basic = await u.grant(f.holders.client_secret_basic, ORDERS, 'orders:read', true);
    const opaque = await u.grant(f.holders.client_secret_basic, BILLING, 'billing:read', false);
    const refresh: Record<Method, string> = { client_secret_basic: basic.refresh_token! } as Record<Method, string>;
    for (const m of ['client_secret_post', 'private_key_jwt'] as const) refresh[m] = (await u.grant(f.holders[m], ORDERS, 'orders:read', true)).refresh_token!;
    return { jwt: basic.access_token!, opaque: opaque.access_token!, refresh };
  };
  const liveCode = await codeFlow(live);
  const revokedCode = await codeFlow(revoked);
  const stoppedCode = await codeFlow(stopped);
  // One sign-in session per user: its grants run one after the other.
  f.rotatedRefresh = {} as Fixtures['rotatedRefresh'];
  for (const m of ['client_secret_basic', 'client_secret_post'] as const) {
    f.rotatedRefresh[m] = {
      inGrace: (await live.grant(f.rotatedHolders[m].inGrace, ORDERS, 'orders:read', true)).refresh_token!,
      pastGrace: (await live.grant(f.rotatedHolders[m].pastGrace, ORDERS, 'orders:read', true)).refresh_token!,
    };
  }

  const [livePat, revokedPat, stoppedPat] = [await pat(live.id, 3600), await pat(live.id, 3600), await pat(stopped.id, 3600)];
  const [liveSat, revokedSat, stoppedSat] = [await sat(liveAccount.id, 3600), await sat(liveAccount.id, 3600), await sat(stoppedAccount.id, 3600)];
  const cc = (caller: Caller) => Promise.all([clientCredentials(caller, ORDERS, 'orders:read'), clientCredentials(caller, BILLING, 'billing:read')]);
  const [liveCc, revokedCc, stoppedCc] = [await cc(f.machines.client_secret_basic), await cc(f.machines.client_secret_basic), await cc(f.stoppedMachines.client_secret_basic)];

  // Revoked: PAT/SAT through the Management API, OAuth tokens through RFC 7009.
  await expectApi(server, admin, 'DELETE', `/tokens/${revokedPat.row.id}`, undefined, 204);
  await expectApi(server, admin, 'DELETE', `/tokens/${revokedSat.row.id}`, undefined, 204);
  await revoke(f.callers.orders.client_secret_basic, revokedCode.jwt);
  await revoke(f.callers.billing.client_secret_basic, revokedCode.opaque);
  await revoke(f.callers.orders.client_secret_basic, revokedCc[0]);
  await revoke(f.callers.billing.client_secret_basic, revokedCc[1]);
  for (const m of METHODS) await revoke(f.holders[m], revokedCode.refresh[m], 'refresh_token');
  // Stopped: the user and the service account.
  await expectApi(server, admin, 'PATCH', `/users/${stopped.id}`, { status: 'deactivated' }, 200);
  await expectApi(server, admin, 'PATCH', `/service-accounts/${stoppedAccount.id}`, { status: 'disabled' }, 200);

  f.access = {
    PAT: { live: livePat.token, revoked: revokedPat.token, expired: expiredAccess.pat.token, stopped: stoppedPat.token },
    SAT: { live: liveSat.token, revoked: revokedSat.token, expired: expiredAccess.sat.token, stopped: stoppedSat.token },
    'code-flow JWT': { live: liveCode.jwt, revoked: revokedCode.jwt, expired: expiredCodeJwt.access_token!, stopped: stoppedCode.jwt },
    'code-flow opaque': { live: liveCode.opaque, revoked: revokedCode.opaque, expired: expiredCodeOpaque.access_token!, stopped: stoppedCode.opaque },
    'client-credentials JWT': { live: liveCc[0], revoked: revokedCc[0], expired: expiredAccess.ccJwt, stopped: stoppedCc[0] },
    'client-credentials opaque': { live: liveCc[1], revoked: revokedCc[1], expired: expiredAccess.ccOpaque, stopped: stoppedCc[1] },
  };
  f.refresh = Object.fromEntries(METHODS.map((m) => [m, { live: liveCode.refresh[m], revoked: revokedCode.refresh[m], expired: expiredRefresh[m], stopped: stoppedCode.refresh[m] }])) as Fixtures['refresh'];
  f.anyToken = livePat.token;

  await sleep(Math.max(0, shortLivedUntil - Date.now()));
  return f;
}

// ---------------------------------------------------------------------------------------

for (const backend of backends) {
  describe(`fast path, Koa path and engine answer alike on ${backend.name}`, () => {
    let f: Fixtures;

    beforeAll(async () => {
      f = await arrange(backend.name);
    }, SERVER_START_TIMEOUT_MS);
    afterAll(async () => {
      f?.engine.closeAllConnections();
      await new Promise((resolve) => f?.engine.close(resolve) ?? resolve(undefined));
      await f?.server.stop();
    });

    it('has the fixtures the cells name: live tokens active, the others not, rotated secrets as described', async () => {
      const active = async (kind: IntrospectionKind, method: Method, failure: Failure) => {
        const cell = CELLS.find((c) => c.endpoint === 'introspection' && c.kind === kind && c.method === method && c.failure === failure) as IntrospectionCell;
        const answer = await runIntrospection(f, cell, 'koa');
        return answer.status === 200 ? (JSON.parse(answer.body) as { active: boolean }).active : answer.status;
      };
      for (const kind of INTROSPECTION_KINDS) {
        for (const method of METHODS) {
          expect(await active(kind, method, 'valid'), `${kind} · ${method}`).toBe(true);
          for (const failure of ['revoked', 'expired', 'stopped owner'] as const) expect(await active(kind, method, failure), `${kind} · ${method} · ${failure}`).toBe(false);
        }
        for (const method of ['client_secret_basic', 'client_secret_post'] as const) {
          expect(await active(kind, method, 'previous secret in grace'), `${kind} · ${method} in grace`).toBe(true);
          expect(await active(kind, method, 'previous secret past grace'), `${kind} · ${method} past grace`).toBe(401);
        }
      }
    });

    it('names, in every known drift, cells of the matrix', () => {
      for (const entry of KNOWN_DRIFT) expect(CELLS.some((cell) => entry.cells(cell)), entry.why).toBe(true);
    });

    for (const cell of CELLS) {
      it(cell.id, async () => {
        const answers: Partial<Record<PathName, Answer>> = {};
        for (const path of cell.paths) answers[path] = cell.endpoint === 'token' ? await runGrant(f, cell, path) : await runIntrospection(f, cell, path);
        const found = drift(cell, answers);
        if (cell.failure === 'previous secret in grace') Object.assign(found, await previousSecretAudit(f, callerOf(f, cell), answers));
        // The fast paths answer what they claim to (README "Introspection fast path": secret
        // methods; "Client-credentials fast path": Basic), so these cells compare them, not Koa twice.
        const fastPathAnswers = cell.endpoint === 'introspection' ? cell.kind !== 'refresh token' && isSecretMethod(cell.method) : cell.method === 'client_secret_basic';
        if (cell.failure === 'valid' && fastPathAnswers) expect(answers.fast!.answeredByFastPath, 'answered by the fast path').toBe(true);
        const known = expectedDrift(cell);
        expect(Object.keys(found).sort(), `paths differ:\n${JSON.stringify(found, null, 2)}\n${known.facets.length > 0 ? `known drift:\n${known.why}` : ''}`).toEqual(known.facets);
      });
    }
  });
}
