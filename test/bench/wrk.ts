/**
 * One load run with wrk (Debian's `wrk` package): a C load generator that spends a small
 * fraction of a Node.js generator's CPU per request, so on a shared machine the server, not the
 * generator, gets the cores. A Lua script checks every answer it counts: an answer counts only
 * if its status is 200 and its body holds every expected fragment (`"active":true` and the
 * expected scope, or an access token). Successive requests may cycle through many bodies (many
 * distinct tokens). The script also reports wrk's own CPU time, read from /proc at the end.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LoadSpec {
  url: string;
  headers: Record<string, string>;
  /** One body for every request, or `bodies`, taken in turn (each connection starts elsewhere). */
  body?: string;
  bodies?: readonly string[];
  /** Fragments every counted answer's body must contain. */
  expect: readonly string[];
  connections: number;
  seconds: number;
  threads?: number;
}

export interface LoadResult {
  /** Answers that were 200 and held every expected fragment, per second. */
  rps: number;
  /** Latency percentiles over every request, in ms. */
  p50: number;
  p99: number;
  requests: number;
  /** Answers that were not the expected ones (status or body), and socket errors. */
  wrong: number;
  errors: number;
  seconds: number;
  /** CPU seconds wrk itself used. */
  generatorCpu: number;
  /** The first wrong answer, for the report. */
  sample?: string;
  /** With `bodies`: true when the run used more requests than there were bodies. */
  wrapped: boolean;
}

/** Lua string literal. */
const lua = (text: string) => JSON.stringify(text);

function script(spec: LoadSpec, bodiesFile: string | undefined): string {
  const headers = Object.entries(spec.headers).map(([k, v]) => `wrk.headers[${lua(k)}] = ${lua(v)}`).join('\n');
  const expected = `{ ${spec.expect.map(lua).join(', ')} }`;
  return `
wrk.method = "POST"
${headers}
${spec.body !== undefined ? `wrk.body = ${lua(spec.body)}` : ''}
local expected = ${expected}
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  wrong = 0
  answers = 0
  sample = ""
  wrapped = 0
  ${bodiesFile ? `bodies = {}
  for line in io.lines(${lua(bodiesFile)}) do bodies[#bodies + 1] = line end
  -- Each thread takes every n-th body, starting at its own: no two requests share a token.
  step = ${spec.threads ?? 1}
  nextIndex = id` : ''}
end

${bodiesFile ? `function request()
  if nextIndex > #bodies then
    nextIndex = id
    wrapped = 1
  end
  local body = bodies[nextIndex]
  nextIndex = nextIndex + step
  return wrk.format(nil, nil, nil, body)
end` : ''}

function response(status, headers, body)
  answers = answers + 1
  local ok = status == 200
  if ok then
    for _, fragment in ipairs(expected) do
      if not string.find(body, fragment, 1, true) then ok = false break end
    end
  end
  if not ok then
    wrong = wrong + 1
    if sample == "" then sample = status .. " " .. string.sub(body, 1, 200) end
  end
end

function done(summary, latency, requests)
  local w, a, s, wr = 0, 0, "", 0
  for _, thread in ipairs(threads) do
    w = w + thread:get("wrong")
    a = a + thread:get("answers")
    wr = math.max(wr, thread:get("wrapped"))
    if s == "" then s = thread:get("sample") end
  end
  local stat = io.open("/proc/self/stat"):read("*l")
  local fields = {}
  for field in string.gmatch(string.gsub(stat, "^.*%) ", ""), "%S+") do fields[#fields + 1] = field end
  local e = summary.errors
  io.write(string.format('WRK_RESULT {"requests":%d,"answers":%d,"micros":%d,"wrong":%d,"errors":%d,"p50":%.3f,"p99":%.3f,"cpuTicks":%d,"wrapped":%s,"sample":"%s"}\\n',
    summary.requests, a, summary.duration, w, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    tonumber(fields[12]) + tonumber(fields[13]), wr == 1 and "true" or "false",
    string.gsub(string.gsub(s, '[%c"\\\\]', " "), "%s+", " ")))
end
`;
}

let checked = false;
/** Fails with an actionable message when wrk is not installed. */
export function requireWrk(): void {
  if (checked) return;
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    // wrk --version exits 1 after printing; only a missing binary is an error here.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('the benchmark needs wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk)');
  }
  checked = true;
}

export async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  requireWrk();
  const dir = mkdtempSync(join(tmpdir(), 'tessera-wrk-'));
  try {
    let bodiesFile: string | undefined;
    if (spec.bodies) {
      bodiesFile = join(dir, 'bodies.txt');
      writeFileSync(bodiesFile, `${spec.bodies.join('\n')}\n`);
    }
    const scriptFile = join(dir, 'load.lua');
    writeFileSync(scriptFile, script(spec, bodiesFile));
    const child = spawn('wrk', ['-t', String(spec.threads ?? 1), '-c', String(spec.connections), '-d', `${spec.seconds}s`, '--timeout', '5s', '-s', scriptFile, spec.url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const line = /WRK_RESULT (\{.*\})/.exec(out)?.[1];
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}):\n${out}`);
    const raw = JSON.parse(line) as { requests: number; answers: number; micros: number; wrong: number; errors: number; p50: number; p99: number; cpuTicks: number; wrapped: boolean; sample: string };
    const seconds = raw.micros / 1e6;
    const good = raw.answers - raw.wrong;
    return {
      rps: good / seconds,
      p50: raw.p50,
      p99: raw.p99,
      requests: raw.requests,
      wrong: raw.wrong,
      errors: raw.errors,
      seconds,
      generatorCpu: raw.cpuTicks / 100,
      wrapped: raw.wrapped,
      ...(raw.sample ? { sample: raw.sample } : {}),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
