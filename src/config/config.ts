import { readFileSync, existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';

import { projectRoot } from '../project-root.js';

/**
 * Configuration is read once, at start-up, from `config/default.json`, the file of the current
 * environment (`config/<NODE_ENV>.json`) and the environment variables of docs/operations.md. Nothing
 * else in Tessera reads `process.env`: every component receives the typed Config it needs.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const durationSeconds = z.number().int().positive();

const rateLimitSchema = z.object({ points: z.number().int().positive(), durationSeconds: durationSeconds });

const seedResourceServer = z.object({
  identifier: z.string().url(),
  name: z.string().optional(),
  scopes: z.array(z.string()),
  token_format: z.enum(['jwt', 'opaque']).default('jwt'),
  access_token_ttl: durationSeconds.optional(),
  sensitive: z.boolean().default(false),
  dpop_required: z.boolean().default(false),
  introspection_client_id: z.string().min(1),
  introspection_client_secret: z.string().min(16),
});

const seedClient = z.object({
  client_id: z.string().min(1),
  client_secret: z.string().min(16).optional(),
  name: z.string().optional(),
  grant_types: z.array(z.string()).default(['client_credentials']),
  token_endpoint_auth_method: z.string().default('client_secret_basic'),
  redirect_uris: z.array(z.string()).default([]),
  post_logout_redirect_uris: z.array(z.string()).default([]),
  response_types: z.array(z.string()).optional(),
  scopes: z.array(z.string()).default([]),
  resources: z.array(z.string()).default([]),
});

const fileSchema = z.object({
  port: z.number().int().min(0).max(65535),
  dataDir: z.string(),
  trustProxy: z.boolean(),
  fastPaths: z.boolean().default(true),
  console: z.object({ sessionIdleSeconds: z.number().int().min(60).max(86400), sessionSeconds: z.number().int().min(300).max(30 * 86400) }).default({ sessionIdleSeconds: 1800, sessionSeconds: 43200 }),
  requireHttpsIssuer: z.boolean(),
  usageFlushSeconds: z.number().positive().max(60),
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(64)]),
  logLevel: z.string(),
  ttl: z.object({
    accessToken: durationSeconds,
    clientCredentials: durationSeconds,
    authorizationCode: durationSeconds,
    idToken: durationSeconds,
    interaction: durationSeconds,
    session: durationSeconds,
    grant: durationSeconds,
    refreshToken: durationSeconds,
    sessionIdle: durationSeconds,
  }),
  keys: z.object({
    publishBeforeSignSeconds: z.number().int().min(0),
    reloadIntervalSeconds: durationSeconds,
  }),
  policyDefaults: z.object({
    max_pat_lifetime_days: z.number().positive(),
    max_sat_lifetime_days: z.number().positive(),
    idle_revocation_days: z.number().positive(),
    allowed_pat_scopes: z.array(z.string()).nullable(),
    refresh_reuse_grace_seconds: z.number().int().min(0),
    token_rotation_grace_seconds: z.number().int().min(0),
    token_pair_sliding_renewal: z.boolean().default(false),
    client_secret_rotation_grace_seconds: z.number().int().min(0),
    audit_retention_days: z.number().int().positive(),
    /** Token inventory: a client secret or PAT/SAT secret older than this scores as overdue for rotation. */
    secret_rotation_days: z.number().positive().default(90),
    /** Days before a PAT/SAT expires at which a `token.expiring` event (and webhook) is sent, once each. */
    expiry_warning_days: z.array(z.number().positive()).max(10).default([30, 7, 1]),
    refresh_absolute_lifetime_seconds: durationSeconds,
    refresh_idle_lifetime_seconds: durationSeconds,
    refresh_token_issuance: z.enum(['offline_access', 'always']),
    pkce_required_for_confidential_clients: z.boolean(),
    logout_revokes_refresh_tokens: z.boolean(),
  }),
  metrics: z.object({
    organizationLabels: z.boolean(),
    processMetrics: z.boolean(),
  }).default({ organizationLabels: false, processMetrics: true }),
  rateLimits: z.object({ token: rateLimitSchema, tokenFailures: rateLimitSchema }).catchall(rateLimitSchema),
  webhooks: z.object({
    deliveryIntervalSeconds: z.number().positive().max(60),
    retrySchedule: z.array(z.number().int().min(1)).max(20),
    timeoutSeconds: z.number().int().min(1).max(60),
  }),
  leakScanning: z.object({
    github: z.object({
      keysUrl: z.string().url(),
      keysCacheSeconds: durationSeconds,
      refetchIntervalSeconds: z.number().int().min(0),
      replayWindowSeconds: durationSeconds,
    }),
  }),
  dpop: z.object({ requireNonce: z.boolean() }),
  mtls: z.object({ clientCertificateHeader: z.string().nullable() }).default({ clientCertificateHeader: null }),
  seed: z.object({
    resourceServers: z.array(seedResourceServer).default([]),
    clients: z.array(seedClient).default([]),
  }).nullable(),
});

export type SeedConfig = NonNullable<z.infer<typeof fileSchema>['seed']>;
export type OrganizationPolicy = z.infer<typeof fileSchema>['policyDefaults'];

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Decodes a 32-byte key given as base64 or base64url (docs/operations.md, "Several nodes behind a load balancer"). */
export function decodeKek(value: string): Buffer | undefined {
  const normalized = value.trim().replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(normalized)) return undefined;
  const bytes = Buffer.from(normalized, 'base64');
  return bytes.length === 32 ? bytes : undefined;
}

/**
 * Internal hosts an operator lets Tessera fetch client URLs from (jwks_uri,
 * sector_identifier_uri), which src/outbound otherwise refuses: host names (every address they
 * resolve to is accepted) and networks (an address inside one is accepted, whatever name led to it).
 */
export interface OutboundAllowList {
  hosts: string[];
  networks: { network: string; prefix: number; family: 'ipv4' | 'ipv6' }[];
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*$/;

/** Parses TESSERA_OUTBOUND_ALLOWED_HOSTS: comma-separated host names, IP addresses and CIDR ranges. */
export function parseOutboundAllowList(value: string | undefined): OutboundAllowList {
  const allow: OutboundAllowList = { hosts: [], networks: [] };
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim().toLowerCase();
    if (!entry) continue;
    const [address, prefixText, ...rest] = entry.split('/');
    const ip = address!.replace(/^\[(.*)\]$/, '$1');
    const version = isIP(ip);
    if (version !== 0 && rest.length === 0) {
      const max = version === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
      if (!(prefix >= 0 && prefix <= max)) throw new ConfigError(`TESSERA_OUTBOUND_ALLOWED_HOSTS: "${raw.trim()}" has a prefix length outside 0-${max}`);
      allow.networks.push({ network: ip, prefix, family: version === 4 ? 'ipv4' : 'ipv6' });
    } else if (/(?:^|\.)(?:\d+|0x[0-9a-f]*)\.?$/.test(entry)) {
      // A URL parser reads such a host as an IPv4 address (`127.1`, `0x7f000001`), never as a name.
      throw new ConfigError(`TESSERA_OUTBOUND_ALLOWED_HOSTS: "${raw.trim()}" is not an IP address in dotted-decimal form`);
    } else if (prefixText === undefined && HOST_NAME.test(entry.replace(/\.$/, ''))) {
      allow.hosts.push(entry.replace(/\.$/, ''));
    } else {
      throw new ConfigError(`TESSERA_OUTBOUND_ALLOWED_HOSTS: "${raw.trim()}" is neither a host name, an IP address nor a CIDR range (wildcards are not supported)`);
    }
  }
  return allow;
}

export interface Config {
  env: string;
  issuer: string;
  port: number;
  /**
   * Whether the first X-Forwarded-For entry names the client (TLS ends at a load balancer that
   * sets it): rate limits, lock-outs and audit events then see the client's address, not the
   * balancer's. On in production (config/production.json), or with TESSERA_TRUST_PROXY.
   */
  trustProxy: boolean;
  /**
   * The two plain handlers in front of Koa (introspection, client-credentials grants). Off, every
   * request takes the whole pipeline and the engine: the same answers, slower. A diagnostic, for
   * measuring what they save or ruling them out.
   */
  fastPaths: boolean;
  /**
   * The web console's sessions (docs/console.md): one ends after `sessionIdleSeconds` without a
   * page view (default 30 minutes) and `sessionSeconds` after sign-in (default 12 hours).
   */
  console: { sessionIdleSeconds: number; sessionSeconds: number };
  /** How often counted uses (PAT/SAT last use, client-secret last use) are written, in seconds. */
  usageFlushSeconds: number;
  /**
   * Processes `tessera serve` runs, sharing the port: each has its own in-process caches, kept
   * coherent by the same pub/sub as separate nodes. More than one needs PostgreSQL and Redis
   * (the embedded database and the in-process store belong to one process).
   */
  workers: number;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  /** How `REDIS_URL` is interpreted: one server, a Cluster seed list, or a Sentinel group. */
  redisMode: 'standalone' | 'cluster' | 'sentinel';
  redisSentinelName: string | undefined;
  /**
   * PostgreSQL schema Tessera works in (its search_path), when one database hosts several
   * installations; undefined means the connection's default (`public`). Every node of one
   * installation uses the same value.
   */
  databaseSchema: string | undefined;
  /** Prefix of every Redis key and channel (default `tessera:`); shared by the nodes of one installation. */
  redisPrefix: string | undefined;
  dataDir: string;
  /** Key-encryption key; undefined only in embedded mode, where start-up generates one. */
  kek: Buffer | undefined;
  /** Cookie signing keys; undefined only in embedded mode, where start-up generates them. */
  cookieKeys: string[] | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  ttl: z.infer<typeof fileSchema>['ttl'];
  keys: z.infer<typeof fileSchema>['keys'];
  policyDefaults: OrganizationPolicy;
  /** /metrics: organization labels (off: cardinality) and process metrics. */
  metrics: z.infer<typeof fileSchema>['metrics'];
  /** When set, /metrics answers only `Authorization: Bearer <this>` (Prometheus `authorization.credentials`). */
  metricsToken: string | undefined;
  /** Exceptions to the refusal of internal addresses for client URLs Tessera fetches (src/outbound). */
  outboundAllowList: OutboundAllowList;
  /**
   * Named rate limits (src/http/rate-limit.ts); `token` is per client on /token (requests known
   * to be the client's), `tokenFailures` per source address and claimed client on /token,
   * introspection and revocation.
   */
  rateLimits: z.infer<typeof fileSchema>['rateLimits'];
  /** Webhook deliveries (src/webhooks/webhook-delivery.ts): how often due ones are sent, when failed ones are tried again, how long one attempt may take. */
  webhooks: z.infer<typeof fileSchema>['webhooks'];
  /** Secret-scanning partners' leak reports (src/tokens/github-secret-scanning.ts): where their signing keys are published. */
  leakScanning: z.infer<typeof fileSchema>['leakScanning'];
  /** RFC 9449: whether every DPoP proof at /token must carry a server-provided nonce (§8). */
  dpop: z.infer<typeof fileSchema>['dpop'];
  /**
   * RFC 8705 certificate-bound access tokens behind a TLS-terminating proxy: the lower-case name
   * of the request header that carries the client certificate (URL-encoded PEM), or null when
   * the feature is off (src/oidc/mtls.ts).
   */
  mtls: { clientCertificateHeader: string | null };
  seed: SeedConfig | null;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`${path}: not valid JSON (${(error as Error).message})`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (key === '//') continue;
    out[key] = isObject(value) && isObject(base[key]) ? merge(base[key], value) : value;
  }
  return out;
}

function stripComments(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripComments);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== '//').map(([k, v]) => [k, stripComments(v)]));
}

const env = z.object({
  NODE_ENV: z.string().default('development'),
  TESSERA_ISSUER: z.string().optional(),
  PORT: z.string().optional(),
  DATABASE_URL: z.string().optional(),
  REDIS_URL: z.string().optional(),
  TESSERA_REDIS_MODE: z.string().optional(),
  TESSERA_REDIS_SENTINEL_NAME: z.string().optional(),
  TESSERA_DATABASE_SCHEMA: z.string().optional(),
  TESSERA_REDIS_PREFIX: z.string().optional(),
  TESSERA_DATA_DIR: z.string().optional(),
  TESSERA_KEK: z.string().optional(),
  TESSERA_COOKIE_KEYS: z.string().optional(),
  LOG_LEVEL: z.string().optional(),
  TESSERA_METRICS_TOKEN: z.string().optional(),
  TESSERA_OUTBOUND_ALLOWED_HOSTS: z.string().optional(),
  TESSERA_TRUST_PROXY: z.string().optional(),
  TESSERA_FAST_PATHS: z.string().optional(),
  TESSERA_WORKERS: z.string().optional(),
  TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER: z.string().optional(),
});

const nonEmpty = (value: string | undefined) => (value === undefined || value.trim() === '' ? undefined : value.trim());

/** `true` or `false` from an environment variable; undefined when it is unset. */
function booleanVar(name: string, raw: string | undefined): boolean | undefined {
  const value = nonEmpty(raw);
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false') throw new ConfigError(`${name} must be true or false, got "${value}"`);
  return value === 'true';
}

/** An RFC 9110 §5.1 field name; headers Tessera or the engine read for something else cannot carry a certificate. */
const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]{1,100}$/;
const RESERVED_HEADERS = new Set(['authorization', 'cookie', 'content-type', 'content-length', 'host', 'dpop', 'origin', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']);

/** The mTLS certificate header: from TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER (`off` for none), else the config file's. */
function certificateHeader(variable: string | undefined, fromFile: string | null, where: string): string | null {
  const raw = variable !== undefined ? (variable.toLowerCase() === 'off' ? null : variable) : fromFile;
  if (raw === null) return null;
  const name = raw.trim().toLowerCase();
  const source = variable !== undefined ? 'TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER' : `${where}: mtls.clientCertificateHeader`;
  if (!FIELD_NAME.test(name)) throw new ConfigError(`${source} must be an HTTP header name, got "${raw}"`);
  if (RESERVED_HEADERS.has(name)) throw new ConfigError(`${source} must not be ${name}: that header means something else`);
  return name;
}

/**
 * Builds the Config. Every failure is a ConfigError whose message is one line that names the
 * variable or file and what is wrong with it, for the operator to fix.
 */
export function loadConfig(
  environment: Record<string, string | undefined>,
  options: { configDir?: string; overrides?: Record<string, unknown> } = {},
): Config {
  const vars = env.parse(environment);
  const configDir = options.configDir ?? join(projectRoot(), 'config');
  let file = readJson(join(configDir, 'default.json'));
  const envFile = join(configDir, `${vars.NODE_ENV}.json`);
  if (existsSync(envFile)) file = merge(file, readJson(envFile));
  if (options.overrides) file = merge(file, options.overrides);
  const parsed = fileSchema.safeParse(stripComments(file));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`config/${vars.NODE_ENV}.json: ${issue.path.join('.')}: ${issue.message}`);
  }
  const fileConfig = parsed.data;

  let port = fileConfig.port;
  const portVar = nonEmpty(vars.PORT);
  if (portVar !== undefined) {
    if (!/^\d+$/.test(portVar) || Number(portVar) > 65535) {
      throw new ConfigError(`PORT must be an integer between 0 and 65535, got "${portVar}"`);
    }
    port = Number(portVar);
  }

  const issuerVar = nonEmpty(vars.TESSERA_ISSUER);
  let issuer = issuerVar ?? `http://localhost:${port}`;
  try {
    const url = new URL(issuer);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('scheme');
    if (url.search || url.hash) throw new Error('query');
    // OpenID Connect Discovery §4.3: the issuer is compared exactly, so normalize away a trailing slash.
    issuer = issuer.replace(/\/+$/, '');
  } catch {
    throw new ConfigError(`TESSERA_ISSUER must be an http(s) URL without query or fragment, got "${issuerVar}"`);
  }
  if (fileConfig.requireHttpsIssuer && !issuer.startsWith('https://')) {
    throw new ConfigError(`TESSERA_ISSUER must use https (config requireHttpsIssuer, set for production), got "${issuer}"`);
  }
  const trustProxy = booleanVar('TESSERA_TRUST_PROXY', vars.TESSERA_TRUST_PROXY) ?? fileConfig.trustProxy;
  const fastPaths = booleanVar('TESSERA_FAST_PATHS', vars.TESSERA_FAST_PATHS) ?? fileConfig.fastPaths;

  // To keep Tessera in one schema of a shared database (tests, one database per several
  // installs), use libpq's `options` parameter: `...?options=-c%20search_path%3Dtessera`. The
  // driver sets it on every connection and migrations run in that schema; no other setting needed.
  const databaseUrl = nonEmpty(vars.DATABASE_URL);
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const redisUrl = nonEmpty(vars.REDIS_URL);
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL (comma-separate several for cluster or sentinel mode)');
  }
  const redisMode = nonEmpty(vars.TESSERA_REDIS_MODE) ?? 'standalone';
  if (redisMode !== 'standalone' && redisMode !== 'cluster' && redisMode !== 'sentinel') {
    throw new ConfigError(`TESSERA_REDIS_MODE must be standalone, cluster or sentinel, got "${redisMode}"`);
  }
  const redisSentinelName = nonEmpty(vars.TESSERA_REDIS_SENTINEL_NAME);
  if (redisMode === 'sentinel' && !redisSentinelName) {
    throw new ConfigError('TESSERA_REDIS_SENTINEL_NAME is required when TESSERA_REDIS_MODE=sentinel');
  }

  const databaseSchema = nonEmpty(vars.TESSERA_DATABASE_SCHEMA);
  // An identifier PostgreSQL accepts unquoted, so it can be placed in search_path safely.
  if (databaseSchema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(databaseSchema)) {
    throw new ConfigError(`TESSERA_DATABASE_SCHEMA must be a lower-case PostgreSQL identifier (letters, digits, _; at most 63), got "${databaseSchema}"`);
  }
  if (databaseSchema !== undefined && databaseUrl === undefined) {
    throw new ConfigError('TESSERA_DATABASE_SCHEMA needs DATABASE_URL: the embedded database has one installation only');
  }
  const redisPrefix = nonEmpty(vars.TESSERA_REDIS_PREFIX);
  if (redisPrefix !== undefined && !/^[\w:.-]{1,64}$/.test(redisPrefix)) {
    throw new ConfigError(`TESSERA_REDIS_PREFIX must be 1 to 64 letters, digits or _ : . -, got "${redisPrefix}"`);
  }

  const kekVar = nonEmpty(vars.TESSERA_KEK);
  let kek: Buffer | undefined;
  if (kekVar !== undefined) {
    kek = decodeKek(kekVar);
    if (!kek) throw new ConfigError('TESSERA_KEK must be 32 bytes encoded as base64 or base64url (generate one with: openssl rand -base64 32)');
  } else if (databaseUrl !== undefined) {
    throw new ConfigError('TESSERA_KEK is required when DATABASE_URL is set: every node must share the key that encrypts signing keys and client secrets');
  }

  const cookieVar = nonEmpty(vars.TESSERA_COOKIE_KEYS);
  let cookieKeys: string[] | undefined;
  if (cookieVar !== undefined) {
    cookieKeys = cookieVar.split(',').map((k) => k.trim());
    const short = cookieKeys.findIndex((k) => k.length < 32);
    if (short !== -1) throw new ConfigError(`TESSERA_COOKIE_KEYS: key #${short + 1} is shorter than 32 characters`);
  } else if (databaseUrl !== undefined) {
    throw new ConfigError('TESSERA_COOKIE_KEYS is required when DATABASE_URL is set: every node must sign cookies with the same keys');
  }

  // `auto`: one per core where storage can be shared, one on the embedded default.
  const workersVar = nonEmpty(vars.TESSERA_WORKERS);
  if (workersVar !== undefined && workersVar !== 'auto' && !/^[1-9]\d?$/.test(workersVar)) {
    throw new ConfigError(`TESSERA_WORKERS must be auto or a number of processes from 1 to 99, got "${workersVar}"`);
  }
  const workersSetting = workersVar === undefined ? fileConfig.workers : workersVar === 'auto' ? 'auto' : Number(workersVar);
  const shared = databaseUrl !== undefined && redisUrl !== undefined;
  const workers = workersSetting === 'auto' ? (shared ? availableParallelism() : 1) : workersSetting;
  if (workers > 1 && !shared) {
    throw new ConfigError(`TESSERA_WORKERS=${workers} needs DATABASE_URL and REDIS_URL: the embedded database and the in-process store belong to one process`);
  }

  const metricsToken = nonEmpty(vars.TESSERA_METRICS_TOKEN);
  if (metricsToken !== undefined && metricsToken.length < 32) {
    throw new ConfigError('TESSERA_METRICS_TOKEN must be at least 32 characters (generate one with: openssl rand -base64 32)');
  }

  const outboundAllowList = parseOutboundAllowList(nonEmpty(vars.TESSERA_OUTBOUND_ALLOWED_HOSTS));

  const mtls = { clientCertificateHeader: certificateHeader(nonEmpty(vars.TESSERA_MTLS_CLIENT_CERTIFICATE_HEADER), fileConfig.mtls.clientCertificateHeader, `config/${vars.NODE_ENV}.json`) };

  const logLevel = nonEmpty(vars.LOG_LEVEL) ?? fileConfig.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  return {
    env: vars.NODE_ENV,
    trustProxy,
    fastPaths,
    console: fileConfig.console,
    usageFlushSeconds: fileConfig.usageFlushSeconds,
    workers,
    issuer,
    port,
    databaseUrl,
    redisUrl,
    redisMode,
    redisSentinelName,
    databaseSchema,
    redisPrefix,
    dataDir: resolve(nonEmpty(vars.TESSERA_DATA_DIR) ?? fileConfig.dataDir),
    kek,
    cookieKeys,
    logLevel: logLevel as Config['logLevel'],
    ttl: fileConfig.ttl,
    keys: fileConfig.keys,
    policyDefaults: fileConfig.policyDefaults,
    metrics: fileConfig.metrics,
    metricsToken,
    outboundAllowList,
    rateLimits: fileConfig.rateLimits,
    webhooks: fileConfig.webhooks,
    leakScanning: fileConfig.leakScanning,
    dpop: fileConfig.dpop,
    mtls,
    seed: fileConfig.seed,
  };
}
