import { pino } from 'pino';
import type { DestinationStream, Logger } from 'pino';

/**
 * Structured JSON logs. docs/design.md, "No secret at rest, none in a log": tokens, secrets, passwords, Authorization headers and
 * cookies never reach a log line. pino's redaction covers known paths; `scrubText` covers
 * free text (error messages, URLs) that might carry a token.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.password',
  '*.client_secret',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.management_token',
  '*.client_assertion',
  '*.code',
  '*.code_verifier',
  'password',
  'client_secret',
  'token',
];

const SECRET_PATTERNS: [RegExp, string][] = [
  [/tsr_(pat|sat|rk)_[0-9A-Za-z]{20,}_?[0-9A-Za-z]*/g, 'tsr_$1_[REDACTED]'],
  [/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, '[REDACTED-JWT]'],
  [/((?:client_secret|password|token|code|code_verifier|refresh_token|access_token|client_assertion)=)[^&\s"]+/gi, '$1[REDACTED]'],
  [/(Bearer|Basic)\s+[\w\-.~+/=]+/gi, '$1 [REDACTED]'],
];

/** Every SECRET_PATTERNS match contains one of these; most text contains none and is returned as is. */
const MAY_HOLD_SECRET = /tsr_|eyJ|=|bearer|basic/i;

export function scrubText(text: string): string {
  if (!MAY_HOLD_SECRET.test(text)) return text;
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: undefined,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Free-text arguments and messages are scrubbed too: an error message can quote a token.
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === 'string' ? scrubText(arg) : arg)) as Parameters<typeof method>);
        },
      },
      serializers: {
        err: (error: Error) => ({ type: error.name, message: scrubText(error.message), stack: error.stack ? scrubText(error.stack) : undefined }),
      },
    },
    options.destination,
  );
}
export type { Logger };
