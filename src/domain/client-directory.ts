import { hash } from 'node:crypto';


import type { Clock } from '../clock.js';
import type { EngineClientMetadata } from './client-metadata.js';
import { createTrustGate } from './trust-gate.js';
import type { MaybePromise } from '../maybe-promise.js';
import type { Envelope } from '../keys/envelope.js';
import { isPlausibleId } from '../storage/ids.js';
import type { ClientRepository } from '../storage/client-repository.js';
import type { ResourceServerRepository } from '../storage/resource-server-repository.js';
import type { ServiceAccountRepository } from '../storage/service-account-repository.js';
import { secretContext, toProviderMetadata } from './client-metadata.js';
import type { ClientRecord } from './types.js';

export interface ClientView {
  record: ClientRecord;
  /** Metadata for oidc-provider, with the decrypted secret. */
  metadata: EngineClientMetadata;
  /** The previous secret while its rotation grace lasts. */
  previousSecret: string | undefined;
  previousSecretExpiresAt: number | undefined;
  /**
   * SHA-256 of the current and previous secrets, computed once per load: a secret check then
   * hashes only the presented value and compares digests in constant time.
   */
  secretDigest: Buffer | undefined;
  previousSecretDigest: Buffer | undefined;
  /** Audiences this client may introspect: its resource server's identifier (RFC 7662 §2.1). */
  introspectionAudiences: string[];
  /** False when the service account owning the client is disabled: the client may get no token. */
  active: boolean;
}

/**
 * Clients as every part of Tessera reads them: from PostgreSQL, decrypted once, and kept in a
 * bounded in-process cache for `ttlMs` so the token and introspection paths authenticate without
 * a database round-trip. `invalidate` (called on change, and by pub/sub from other nodes) drops
 * an entry at once. The cache answers only while `trusted()` says this node's pub/sub
 * subscription works, so a change announced by another node is never missed for longer than
 * that bound (1 s, src/tokens/reference-token-cache.ts) rather than for `ttlMs`: a deleted
 * client, or one whose service account was disabled, stops its tokens within it on every node.
 */
const sha256 = (value: string) => hash('sha256', value, 'buffer');

export function createClientDirectory(deps: {
  clients: ClientRepository;
  resourceServers: ResourceServerRepository;
  serviceAccounts?: Pick<ServiceAccountRepository, 'findById'>;
  envelope: Envelope;
  clock: Clock;
  /** The installation's issuer: the built-in console client's redirect URI is on it. */
  issuer?: string;
  ttlMs?: number;
  maxEntries?: number;
  /** Whether every change announced by another node has arrived (default: always). */
  trusted?: () => boolean;
}) {
  const ttlMs = deps.ttlMs ?? 30_000;
  const maxEntries = deps.maxEntries ?? 10_000;
  const cache = new Map<string, { view: ClientView | undefined; until: number }>();
  /** Bumped by every invalidation: a load that started before one must not be cached after it. */
  let generation = 0;
  /** Whether the cache may answer now; entries kept while messages may have been lost are dropped. */
  const trusted = createTrustGate(deps.trusted, () => cache.clear());

  async function load(clientId: string): Promise<ClientView | undefined> {
    const record = await deps.clients.findById(clientId);
    if (!record) return undefined;
    const introspectionAudiences: string[] = [];
    if (record.resource_server_id) {
      const rs = await deps.resourceServers.findById(record.resource_server_id);
      if (rs) introspectionAudiences.push(rs.identifier);
    }
    let active = true;
    if (record.service_account_id && deps.serviceAccounts) {
      const owner = await deps.serviceAccounts.findById(record.service_account_id);
      active = owner?.status === 'active';
    }
    const metadata = toProviderMetadata(record, deps.envelope, deps.issuer);
    const previousSecret = record.previous_secret_enc ? deps.envelope.open(record.previous_secret_enc, secretContext(record.client_id, 'previous')) : undefined;
    return {
      record,
      active,
      metadata,
      previousSecret,
      previousSecretExpiresAt: record.previous_secret_expires_at?.getTime(),
      secretDigest: typeof metadata.client_secret === 'string' ? sha256(metadata.client_secret) : undefined,
      previousSecretDigest: previousSecret !== undefined ? sha256(previousSecret) : undefined,
      introspectionAudiences,
    };
  }

  return {
    /** The client, synchronously when it is cached (the introspection hot path relies on that). */
    get(clientId: string): MaybePromise<ClientView | undefined> {
      if (!isPlausibleId(clientId)) return undefined;
      const useCache = trusted();
      const hit = useCache ? cache.get(clientId) : undefined;
      if (hit && hit.until > deps.clock.now()) return hit.view;
      const startedAt = generation;
      return load(clientId).then((view) => {
        // A load that raced with a change (read the row before it was committed) is not kept.
        if (!useCache || generation !== startedAt) return view;
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
        cache.set(clientId, { view, until: deps.clock.now() + ttlMs });
        return view;
      });
    },
    invalidate(clientId?: string): void {
      generation += 1;
      if (clientId === undefined) cache.clear();
      else cache.delete(clientId);
    },
  };
}
export type ClientDirectory = ReturnType<typeof createClientDirectory>;
