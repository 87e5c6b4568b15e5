/**
 * The per-request cache budget (src/storage/request-deadline.ts) counts waiting only: work a
 * request does between two commands does not spend it, waits in flight together count once, and
 * a request's budget is its own.
 */
import { describe, expect, it } from 'vitest';

import { createRequestDeadline } from '../../src/storage/request-deadline.js';

function setup() {
  let now = 0;
  const deadline = createRequestDeadline({ budgetMs: 800, monotonicNow: () => now });
  const advance = (ms: number) => {
    now += ms;
  };
  /** A wait that settles when `settle` is called. */
  const wait = () => {
    let settle!: () => void;
    const promise = new Promise<void>((resolve) => (settle = resolve));
    return { promise, settle };
  };
  return { deadline, advance, wait };
}

describe('the request cache deadline', () => {
  it('is undefined outside a request and after its answer', () => {
    const { deadline } = setup();
    expect(deadline.remaining()).toBeUndefined();
    const request = deadline.begin();
    request.run(() => expect(deadline.remaining()).toBe(800));
    request.end();
    request.run(() => expect(deadline.remaining()).toBeUndefined());
  });

  it('spends only waiting: a second of work between two commands leaves the budget whole', async () => {
    const { deadline, advance, wait } = setup();
    const request = deadline.begin();
    await request.run(async () => {
      advance(1000); // hashing a password, say
      expect(deadline.remaining()).toBe(800);
      const first = wait();
      void deadline.waitFor(first.promise);
      advance(300);
      expect(deadline.remaining()).toBe(500);
      first.settle();
      await first.promise;
      await Promise.resolve();
      advance(5000);
      expect(deadline.remaining()).toBe(500);
    });
  });

  it('counts waits in flight together once, and a spent budget stays spent', async () => {
    const { deadline, advance, wait } = setup();
    const request = deadline.begin();
    await request.run(async () => {
      const a = wait();
      const b = wait();
      void deadline.waitFor(a.promise);
      void deadline.waitFor(b.promise);
      advance(500);
      a.settle();
      await a.promise;
      await Promise.resolve();
      expect(deadline.remaining()).toBe(300);
      advance(400);
      expect(deadline.remaining()).toBe(0);
      b.settle();
      await b.promise;
      await Promise.resolve();
      expect(deadline.remaining()).toBe(0);
    });
  });

  it('keeps each request to its own budget', async () => {
    const { deadline, advance, wait } = setup();
    const one = deadline.begin();
    const two = deadline.begin();
    const slow = wait();
    one.run(() => void deadline.waitFor(slow.promise));
    advance(700);
    one.run(() => expect(deadline.remaining()).toBe(100));
    two.run(() => expect(deadline.remaining()).toBe(800));
  });
});
