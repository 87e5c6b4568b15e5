import type { AuditEvent, AuditLog } from '../audit/audit-event.js';
import type { RevocationReason, TesseraMetrics } from './metrics.js';

/** The PAT/SAT lifecycle's revocation reasons (token-service.ts) as the metric's `reason` label. */
const REASONS: Record<string, RevocationReason> = {
  revoked_by_api: 'api',
  rfc7009: 'rfc7009',
  leaked: 'leak_report',
  idle: 'idle',
  expired: 'expiry',
  replaced_secret_reused: 'reuse_detected',
  rotation_key_reused: 'reuse_detected',
};

export function revocationReason(reason: unknown): RevocationReason {
  if (typeof reason !== 'string') return 'other';
  return REASONS[reason] ?? (/owner|role|deactivat|disabl|delet/.test(reason) ? 'ownership_change' : 'other');
}

/**
 * Counts the reference-token lifecycle (issue, rotation, revocation by reason) from the audit
 * events the token service already records, so its code needs no metrics of its own. Give it
 * only to the token service: other emitters count their tokens directly.
 */
export function withTokenMetrics(audit: AuditLog, metrics: Pick<TesseraMetrics, 'tokenIssued' | 'tokenRevoked'>): AuditLog {
  return {
    record(event: AuditEvent) {
      const details = event.details ?? {};
      if (event.action === 'token.issued') metrics.tokenIssued('reference_token', String(details.type ?? 'reference_token'), event.organizationId);
      else if (event.action === 'token.rotated') metrics.tokenIssued('rotation', String(details.type ?? 'reference_token'), event.organizationId);
      else if (event.action === 'token.revoked') metrics.tokenRevoked(revocationReason(details.reason), 'reference_token', event.organizationId);
      audit.record(event);
    },
    flush: () => audit.flush(),
    close: () => audit.close(),
  };
}
