/**
 * Runs the real `tessera` command line as a child process, the way an operator does, with an
 * environment of the test's choosing (nothing inherited but PATH and HOME).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
const CLI = resolve(REPO_ROOT, 'src/cli.ts');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment of a child: only what the test passes, so the developer's shell cannot leak in. */
export function childEnv(env: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test' };
  for (const [name, value] of Object.entries(env)) if (value !== undefined) out[name] = value;
  return out;
}

/**
 * Starts `tessera <args>`; the caller owns the process. Node itself loads tsx as a module hook,
 * rather than through the `tsx` launcher, which would run the CLI in a grandchild: a signal or a
 * kill must reach the CLI itself, or a killed test leaves a server running.
 */
export function spawnCli(args: string[], env: Record<string, string | undefined>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO_ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Runs `tessera <args>` to completion. A child is killed after `timeoutMs`: generous, because
 * each one compiles and loads the whole app (several CPU-seconds) and CI machines are shared.
 */
export function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 100_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnCli(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    child.stderr!.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A PostgreSQL URL whose connections work in `schema`: libpq's `options` parameter sets the
 * search_path at connection start-up, and `pg` honours it, so the CLI needs no extra setting.
 */
export function urlWithSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  return parsed.toString();
}

/**
 * Lines the process wrote to stderr, minus the engine's "Unsupported runtime" notice on
 * Node 20 (README.md: it works there; the notice is not Tessera's output).
 */
export function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.trim() !== '' && !line.includes('Unsupported runtime'));
}
