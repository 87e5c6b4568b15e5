/**
 * The one rule "may this token's principal still act" (src/tokens/principal-liveness.ts): what it
 * answers for each principal, that a cached answer is synchronous (the introspection fast path
 * relies on it), and that a change is never hidden by the cache: not after `changed`, not by a load
 * that raced with the change, and not while the node's pub/sub subscription is not trusted.
 */
import { describe, expect, it } from 'vitest';

import type { ClientView } from '../../src/domain/client-directory.js';
import type { User } from '../../src/domain/types.js';
import { createLogger } from '../../src/http/logger.js';
import { createTestClock } from '../helpers/test-clock.js';
import { createPrincipalLiveness, PRINCIPALS_CHANNEL } from '../../src/tokens/principal-liveness.js';

const ORG = 'org_1';

function user(overrides: Partial<User> = {}): User {
  return {
    id: 'usr_1', organization_id: ORG, username: 'alice', email: null, name: null, role: 'admin', password_hash: null, status: 'active',
    created_at: new Date(), updated_at: new Date(), ...overrides,
  };
}

const view = (active = true, organizationId = ORG) => ({ record: { client_id: 'cl_1', organization_id: organizationId }, active }) as unknown as ClientView;

function setup(options: { trusted?: () => boolean } = {}) {
  const rows = new Map<string, User>([['usr_1', user()]]);
  const clients = new Map<string, ClientView>([['cl_1', view()]]);
  const published: string[] = [];
  let lookups = 0;
  let gate: Promise<void> | undefined;
  const liveness = createPrincipalLiveness({
    users: {
      async findById(id) {
        lookups += 1;
        const row = rows.get(id);
        await gate;
        return row;
      },
    },
    clients: { get: (id) => clients.get(id) },
    cache: { publish: async (channel, message) => void (channel === PRINCIPALS_CHANNEL && published.push(message)) },
    clock: createTestClock(),
    logger: createLogger({ level: 'silent' }),
    trusted: options.trusted,
  });
  return {
    liveness, rows, clients, published,
    lookups: () => lookups,
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

describe('principal liveness', () => {
  it('answers for a client alone, and for a user through a client', async () => {
    const { liveness, clients, rows } = setup();
    expect(await liveness.check('cl_1')).toEqual({});
    expect(await liveness.check('cl_1', 'usr_1', ORG)).toMatchObject({ user: { id: 'usr_1', role: 'admin', username: 'alice', organizationId: ORG } });
    expect(await liveness.check('cl_unknown', 'usr_1')).toBeUndefined();
    expect(await liveness.check(undefined, 'usr_1')).toBeUndefined();
    // The token's organization must be the client's, and the user must be of it.
    expect(await liveness.check('cl_1', 'usr_1', 'org_2')).toBeUndefined();
    rows.set('usr_2', user({ id: 'usr_2', organization_id: 'org_2' }));
    expect(await liveness.check('cl_1', 'usr_2')).toBeUndefined();
    rows.set('usr_3', user({ id: 'usr_3', status: 'deactivated' }));
    expect(await liveness.check('cl_1', 'usr_3')).toBeUndefined();
    expect(await liveness.check('cl_1', 'usr_missing')).toBeUndefined();
    clients.set('cl_1', view(false));
    expect(await liveness.check('cl_1')).toBeUndefined();
  });

  it('answers synchronously once the user is cached, without asking the database again', async () => {
    const { liveness, lookups } = setup();
    await liveness.check('cl_1', 'usr_1');
    const answer = liveness.check('cl_1', 'usr_1');
    expect(answer).not.toBeInstanceOf(Promise);
    expect(answer).toMatchObject({ user: { id: 'usr_1' } });
    expect(lookups()).toBe(1);
  });

  it('sees a change once it is announced, here and through a message from another node', async () => {
    const { liveness, rows, published } = setup();
    await liveness.check('cl_1', 'usr_1');
    rows.set('usr_1', user({ status: 'deactivated' }));
    await liveness.changed(['usr_1']);
    expect(published).toEqual([JSON.stringify(['usr_1'])]);
    expect(await liveness.check('cl_1', 'usr_1')).toBeUndefined();

    rows.set('usr_1', user({ role: 'member' }));
    liveness.applyMessage(JSON.stringify(['usr_1']));
    expect(await liveness.check('cl_1', 'usr_1')).toMatchObject({ user: { role: 'member' } });
    rows.delete('usr_1');
    liveness.applyMessage('not json');
    liveness.applyMessage(JSON.stringify(['usr_1']));
    expect(await liveness.check('cl_1', 'usr_1')).toBeUndefined();
  });

  it('does not keep a load that raced with a change', async () => {
    const { liveness, rows, hold } = setup();
    const release = hold();
    // The load reads the row before the change is committed, and ends after it was announced.
    const racing = liveness.check('cl_1', 'usr_1');
    rows.set('usr_1', user({ status: 'deactivated' }));
    await liveness.changed(['usr_1']);
    release();
    expect(await racing).toBeDefined();
    expect(await liveness.check('cl_1', 'usr_1')).toBeUndefined();
  });

  it('asks the database every time while the pub/sub subscription is not trusted, and drops what it held', async () => {
    let trusted = true;
    const { liveness, rows, lookups } = setup({ trusted: () => trusted });
    await liveness.check('cl_1', 'usr_1');
    expect(lookups()).toBe(1);
    trusted = false;
    // A change announced by another node never arrives here; the database is asked instead.
    rows.set('usr_1', user({ status: 'deactivated' }));
    expect(await liveness.check('cl_1', 'usr_1')).toBeUndefined();
    expect(await liveness.check('cl_1', 'usr_1')).toBeUndefined();
    expect(lookups()).toBe(3);
    trusted = true;
    expect(await liveness.check('cl_1', 'usr_1')).toBeUndefined();
  });
});
