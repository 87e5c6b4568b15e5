/**
 * Where the CPU goes during a load run (Linux /proc, clock ticks at 100 Hz): the server under
 * test with every process it started (workers), PostgreSQL and Redis (which do Tessera's
 * storage work, so they belong to its cost per request), and the kernel's interrupt and softirq
 * time (the loopback network stack), which no process is charged for.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface CpuSnapshot {
  server: number;
  postgres: number;
  redis: number;
  softirq: number;
  /** Every core's busy time, to tell what else ran. */
  busy: number;
}

export type CpuSplit = CpuSnapshot;

const TICK = 100;

function stat(pid: number): { comm: string; ppid: number; ticks: number; exitedChildren: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { comm, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]), exitedChildren: Number(fields[13]) + Number(fields[14]) };
  } catch {
    return undefined;
  }
}

/** A snapshot of CPU seconds so far, by group. `serverPid` counts with all its descendants. */
export function cpuSnapshot(serverPid: number | undefined): CpuSnapshot {
  const processes = new Map<number, { comm: string; ppid: number; ticks: number; exitedChildren: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const s = stat(Number(entry));
    if (s) processes.set(Number(entry), s);
  }
  const inServer = (pid: number): boolean => {
    for (let p = pid, depth = 0; p > 1 && depth < 10; depth += 1) {
      if (p === serverPid) return true;
      p = processes.get(p)?.ppid ?? 0;
    }
    return false;
  };
  let server = 0;
  let postgres = 0;
  let redis = 0;
  for (const [pid, s] of processes) {
    // Workers live as long as the server, so its live processes are enough. PostgreSQL ends a
    // backend when the pool closes an idle connection; the postmaster, which reaps it, keeps
    // its time in its own exited-children counters, so those count too.
    if (serverPid !== undefined && inServer(pid)) server += s.ticks;
    else if (s.comm === 'postgres') postgres += s.ticks + (processes.get(s.ppid)?.comm === 'postgres' ? 0 : s.exitedChildren);
    else if (s.comm.startsWith('redis-server')) redis += s.ticks;
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + (cpu[7] ?? 0);
  return { server: server / TICK, postgres: postgres / TICK, redis: redis / TICK, softirq: (cpu[5]! + cpu[6]!) / TICK, busy: busy / TICK };
}

/** What each group used between two snapshots (never below zero: a process may end in between). */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuSplit {
  const delta = (key: keyof CpuSnapshot) => Math.max(0, after[key] - before[key]);
  return { server: delta('server'), postgres: delta('postgres'), redis: delta('redis'), softirq: delta('softirq'), busy: delta('busy') };
}
