import type { Database } from './database.js';

/** What a user allowed a client (migrations/1700000004000_signin.sql). */
export interface Consent {
  user_id: string;
  client_id: string;
  organization_id: string;
  oidc_scopes: string[];
  oidc_claims: string[];
  resource_scopes: Record<string, string[]>;
  created_at: Date;
  updated_at: Date;
}

export type ConsentGrant = Pick<Consent, 'oidc_scopes' | 'oidc_claims' | 'resource_scopes'>;

const union = (a: readonly string[], b: readonly string[]) => [...new Set([...a, ...b])];

export function createConsentRepository(db: Database) {
  return {
    async find(userId: string, clientId: string): Promise<Consent | undefined> {
      const { rows } = await db.query<Consent>('SELECT * FROM consents WHERE user_id = $1 AND client_id = $2', [userId, clientId]);
      return rows[0];
    },
    /** Adds to what the user already allowed this client (consent only ever grows here). */
    async remember(userId: string, clientId: string, organizationId: string, granted: ConsentGrant): Promise<void> {
      await db.transaction(async (tx) => {
        const { rows } = await tx.query<Consent>('SELECT * FROM consents WHERE user_id = $1 AND client_id = $2 FOR UPDATE', [userId, clientId]);
        const before = rows[0];
        const resourceScopes: Record<string, string[]> = { ...(before?.resource_scopes ?? {}) };
        for (const [resource, scopes] of Object.entries(granted.resource_scopes)) resourceScopes[resource] = union(resourceScopes[resource] ?? [], scopes);
        await tx.query(
          `INSERT INTO consents (user_id, client_id, organization_id, oidc_scopes, oidc_claims, resource_scopes)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (user_id, client_id) DO UPDATE SET oidc_scopes = EXCLUDED.oidc_scopes, oidc_claims = EXCLUDED.oidc_claims,
             resource_scopes = EXCLUDED.resource_scopes, updated_at = now()`,
          [
            userId, clientId, organizationId,
            JSON.stringify(union(before?.oidc_scopes ?? [], granted.oidc_scopes)),
            JSON.stringify(union(before?.oidc_claims ?? [], granted.oidc_claims)),
            JSON.stringify(resourceScopes),
          ],
        );
      });
    },
    /** Forgets a consent (the user or an administrator withdrew it). */
    async forget(userId: string, clientId: string): Promise<boolean> {
      const { rowCount } = await db.query('DELETE FROM consents WHERE user_id = $1 AND client_id = $2', [userId, clientId]);
      return rowCount > 0;
    },
  };
}
export type ConsentRepository = ReturnType<typeof createConsentRepository>;
