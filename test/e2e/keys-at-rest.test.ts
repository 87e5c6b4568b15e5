/**
 * docs/design.md, "No secret at rest, none in a log": private signing keys are stored encrypted with the key-encryption key, and a
 * node holding a different KEK cannot use them: it refuses to start, in one clear line.
 */
import { randomBytes } from 'node:crypto';

import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { decodeKek } from '../../src/config/config.js';
import { createEnvelope, EnvelopeError } from '../../src/keys/envelope.js';
import { backends } from '../helpers/backends.js';
import { runCli, stderrLines, urlWithSchema } from '../helpers/cli.js';
import { freePort, startTestServer } from '../helpers/server.js';
import type { TestServer } from '../helpers/server.js';

interface Row {
  kid: string;
  alg: string;
  state: string;
  public_jwk: JWK;
  private_jwk_enc: string;
}

/** Private members of an EC or RSA JWK (RFC 7518 §6.2.2, §6.3.2). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;

for (const backend of backends) {
  describe(`signing keys at rest on ${backend.name}`, () => {
    let server: TestServer;
    let rows: Row[];

    beforeAll(async () => {
      server = await startTestServer(backend.name);
      // Stage a second key per algorithm, so `next` rows are covered too.
      await server.tessera.keyService.rotate();
      await server.tessera.announceKeyChange();
      ({ rows } = await server.tessera.db.query<Row>('SELECT kid, alg, state, public_jwk, private_jwk_enc FROM signing_keys ORDER BY kid'));
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('stores every private key sealed: no private member appears in the stored value', () => {
      expect(rows.map((r) => `${r.alg}:${r.state}`).sort()).toEqual(['ES256:current', 'ES256:next', 'RS256:current', 'RS256:next']);
      const privateJwks = new Map<string, JWK>();
      for (const jwk of [...server.tessera.keys.current.privateJwks.keys]) privateJwks.set(jwk.kid!, jwk);
      for (const row of rows) {
        const jwk = privateJwks.get(row.kid);
        expect(jwk?.d, `the running node holds the private key ${row.kid}`).toBeTruthy();
        expect(row.private_jwk_enc).toMatch(/^v1\.[\w-]+\.[\w-]+$/);
        for (const member of PRIVATE_MEMBERS) {
          const value = jwk![member];
          if (value) expect(row.private_jwk_enc).not.toContain(value);
        }
        expect(row.private_jwk_enc).not.toContain('"d"');
        // The public part is stored in the clear, and holds nothing private.
        for (const member of PRIVATE_MEMBERS) expect(row.public_jwk[member]).toBeUndefined();
      }
    });

    it('opens only with the right KEK and only as the row it was sealed for', () => {
      const kek = decodeKek(server.env.TESSERA_KEK!)!;
      const right = createEnvelope(kek);
      const wrong = createEnvelope(randomBytes(32));
      for (const row of rows) {
        const opened = JSON.parse(right.open(row.private_jwk_enc, `signing-key:${row.kid}`)) as JWK;
        expect(opened.kid).toBe(row.kid);
        expect(opened.d).toBeTruthy();
        expect(opened.x ?? opened.n).toBe(row.public_jwk.x ?? row.public_jwk.n);
        expect(() => wrong.open(row.private_jwk_enc, `signing-key:${row.kid}`)).toThrow(EnvelopeError);
      }
      // The kid is bound in as additional data: a sealed key copied onto another row does not open.
      expect(() => right.open(rows[0]!.private_jwk_enc, `signing-key:${rows[1]!.kid}`)).toThrow(EnvelopeError);
    });

    it('refuses to start a node with a different TESSERA_KEK, naming the variable', { timeout: 120_000 }, async () => {
      const wrongKek = randomBytes(32).toString('base64');
      if (backend.name === 'pglite+memory') {
        // The embedded database has one owner at a time: stop the first node, keep its data.
        await server.running.stop();
        await expect(startTestServer(backend.name, { shareStorageWith: server, env: { TESSERA_KEK: wrongKek } })).rejects.toThrow(/TESSERA_KEK/);
        return;
      }
      // PostgreSQL: the operator's own command, as a child process, must fail in one line.
      const result = await runCli(['serve'], {
        DATABASE_URL: urlWithSchema(server.env.DATABASE_URL!, server.schema!),
        TESSERA_KEK: wrongKek,
        TESSERA_COOKIE_KEYS: server.env.TESSERA_COOKIE_KEYS!,
        TESSERA_DATA_DIR: server.env.TESSERA_DATA_DIR!,
        PORT: String(await freePort()),
        LOG_LEVEL: 'warn',
      });
      expect(result.signal).toBeNull();
      expect(result.code).not.toBe(0);
      const lines = stderrLines(result.stderr);
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^tessera: cannot start: .*TESSERA_KEK/);
      expect(result.stderr).not.toMatch(/^\s+at /m);
      // The node with the right key still works on the same database.
      expect((await fetch(`${server.url}/jwks`)).status).toBe(200);
    });
  });
}
