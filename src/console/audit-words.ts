/**
 * Audit events in words for people: "alice revoked SAT deploy-bot: leaked". The event keeps ids
 * (src/audit/audit-event.ts); the console looks the names up through the Management API and
 * passes them in. An action without a phrase here is shown by its name, never dropped.
 */
const VERBS: Record<string, string> = {
  'token.issued': 'issued',
  'token.revoked': 'revoked',
  'token.rotated': 'rotated',
  'token.leak_reported': 'reported as leaked',
  'token.reuse_detected': 'detected reuse of a replaced secret of',
  'user.created': 'created',
  'user.updated': 'changed',
  'user.deleted': 'deleted',
  'user.password_set': 'set the password of',
  'user.unlocked': 'lifted the sign-in lock-out of',
  'service_account.created': 'created',
  'service_account.updated': 'changed',
  'service_account.deleted': 'deleted',
  'client.created': 'created',
  'client.updated': 'changed',
  'client.deleted': 'deleted',
  'client.secret_rotated': 'rotated the secret of',
  'client.previous_secret_used': 'used the previous secret of',
  'resource_server.created': 'added',
  'resource_server.updated': 'changed',
  'resource_server.deleted': 'deleted',
  'resource_server.credentials_rotated': 'rotated the introspection credentials of',
  'initial_access_token.issued': 'issued',
  'initial_access_token.revoked': 'revoked',
  'organization.created': 'created',
  'organization.updated': 'changed',
  'login.succeeded': 'signed in to',
  'login.failed': 'failed to sign in to',
  'login.locked_out': 'was locked out as',
  'consent.granted': 'allowed',
  'consent.denied': 'denied',
  'authority.denied': 'was refused an operation on',
};

const TARGET_WORDS: Record<string, string> = {
  user: 'user',
  service_account: 'service account',
  client: 'client',
  resource_server: 'API',
  initial_access_token: 'initial access token',
  organization: 'organization',
};

export interface AuditEventView {
  actor: { type: string; id: string | null; name: string | null };
  action: string;
  target: { type: string | null; id: string | null };
  outcome: string;
  details: Record<string, unknown>;
}

/** Names of what events point at: token ids to "SAT deploy-bot", user ids to their usernames. */
export type NameBook = Map<string, string>;

export function describeEvent(event: AuditEventView, names: NameBook): string {
  const actor = event.actor.name ?? (event.actor.id ? names.get(event.actor.id) ?? event.actor.id : event.actor.type);
  const verb = VERBS[event.action] ?? event.action.replace(/[._]/g, ' ');
  let target = '';
  if (event.target.id) {
    const named = names.get(event.target.id);
    const kind = event.target.type === 'reference_token' ? '' : TARGET_WORDS[event.target.type ?? ''] ?? event.target.type ?? '';
    target = named ? `${kind ? `${kind} ` : ''}${named}` : `${kind ? `${kind} ` : ''}${event.target.id}`;
  }
  const reason = typeof event.details.reason === 'string' ? event.details.reason.replace(/_/g, ' ') : undefined;
  return `${actor} ${verb}${target ? ` ${target}` : ''}${reason ? `: ${reason}` : ''}`;
}
