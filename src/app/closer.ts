/**
 * What an opened layer must release (pools, subscriptions, timers, writers), in the reverse of
 * the order it was opened: a writer closes before the pool it writes to. Closing twice is safe,
 * and one failing release does not keep the others from running.
 */
export interface Closer {
  add(release: () => Promise<void> | void): void;
  /** A timer that lives as long as the layer. */
  every(intervalMs: number, run: () => void): void;
  close(): Promise<void>;
}

export function createCloser(): Closer {
  const releases: (() => Promise<void> | void)[] = [];
  let closed = false;
  return {
    add(release) {
      releases.push(release);
    },
    every(intervalMs, run) {
      const timer = setInterval(run, intervalMs);
      releases.push(() => clearInterval(timer));
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const release of releases.reverse()) {
        try {
          await release();
        } catch {
          // Shutting down: the remaining releases still run.
        }
      }
    },
  };
}
