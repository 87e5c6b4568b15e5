/**
 * The live heap of another Node process: a full garbage collection, then `heapUsed`, asked
 * through the process's inspector (started with `--inspect=127.0.0.1:0`). Resident memory is
 * not a leak measure: V8 grows its heap towards its working size at its own pace and seldom
 * gives pages back, so RSS rises for a minute under load with nothing leaking. What survives a
 * full collection is what the process still holds.
 */
export interface LiveHeap {
  /** MiB still reachable after a full collection. */
  sample(): Promise<number>;
  close(): void;
}

/** The inspector's WebSocket address, printed on stderr when the process starts. */
export function inspectorUrl(output: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
}

export async function connectLiveHeap(url: string): Promise<LiveHeap> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new Error(`cannot reach the inspector at ${url}`)), { once: true });
  });
  let next = 1;
  const pending = new Map<number, (result: unknown) => void>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) pending.get(message.id)?.(message.result);
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve) => {
      const id = next++;
      pending.set(id, (result) => {
        pending.delete(id);
        resolve(result);
      });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return {
    async sample() {
      await call('HeapProfiler.collectGarbage');
      const answer = (await call('Runtime.evaluate', { expression: 'process.memoryUsage().heapUsed', returnByValue: true })) as { result: { value: number } };
      return Math.round((answer.result.value / 1024 / 1024) * 10) / 10;
    },
    close: () => socket.close(),
  };
}
