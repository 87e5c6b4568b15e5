/**
 * An in-process cache may answer only while this node hears every invalidation (its pub/sub
 * heartbeat is fresh). The gate asks `isTrusted` (always trusted without it) and, the moment
 * trust is lost, calls `forget`: whatever was cached while messages may have been lost is
 * dropped, never trusted again later.
 */
export function createTrustGate(isTrusted: (() => boolean) | undefined, forget: () => void): () => boolean {
  let wasTrusted = true;
  return () => {
    const now = isTrusted?.() ?? true;
    if (!now && wasTrusted) forget();
    wasTrusted = now;
    return now;
  };
}
