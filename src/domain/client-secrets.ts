import type { Clock } from '../clock.js';
import type { Envelope } from '../keys/envelope.js';
import type { ClientRepository } from '../storage/client-repository.js';
import type { Queryable } from '../storage/database.js';
import { generateClientSecret } from './client-policy.js';
import { secretContext } from './client-metadata.js';
import type { ClientRecord } from './types.js';

/**
 * Client secret rotation. The new secret is shown once; the one it replaces keeps working for
 * `graceSeconds` (organization policy `client_secret_rotation_grace_seconds`), so a deployment
 * can roll out the new secret without an outage. Both are stored encrypted with the KEK, each
 * bound to its client and slot. A secret that was itself a grace-period leftover is dropped:
 * only the secret in use at the moment of rotation gets a grace period.
 */
export async function rotateClientSecret(
  deps: { clients: ClientRepository; envelope: Envelope; clock: Clock },
  record: ClientRecord,
  graceSeconds: number,
  q?: Queryable,
): Promise<{ record: ClientRecord; secret: string }> {
  const secret = generateClientSecret();
  const now = deps.clock.now();
  let previousEnc: string | null = null;
  let previousExpiresAt: Date | null = null;
  if (record.secret_enc && graceSeconds > 0) {
    const current = deps.envelope.open(record.secret_enc, secretContext(record.client_id));
    previousEnc = deps.envelope.seal(current, secretContext(record.client_id, 'previous'));
    previousExpiresAt = new Date(now + graceSeconds * 1000);
  }
  const updated = await deps.clients.rotateSecret(
    record.client_id,
    deps.envelope.seal(secret, secretContext(record.client_id)),
    previousEnc,
    previousExpiresAt,
    new Date(now),
    q,
  );
  return { record: updated!, secret };
}

export function sealNewSecret(envelope: Envelope, clientId: string): { secret: string; sealed: string } {
  const secret = generateClientSecret();
  return { secret, sealed: envelope.seal(secret, secretContext(clientId)) };
}
