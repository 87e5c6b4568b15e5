import type { FieldProblem } from '../domain/client-policy.js';
import { ProblemError } from '../http/middleware.js';

/** RFC 9457 answers shared by the resource routes; 404 for anything of another organization. */
export const notFound = (what: string) => new ProblemError(404, 'Not Found', `no such ${what}`);

export const conflict = (field: string, message: string) =>
  new ProblemError(409, 'Conflict', `${field}: ${message}`, { errors: [{ field, message }] });

export const forbidden = (detail: string) => new ProblemError(403, 'Forbidden', detail);

/** A 422 in the same form as schema validation failures, for rules schemas cannot express. */
export function invalidFields(problems: FieldProblem[]): ProblemError {
  const first = problems[0]!;
  return new ProblemError(422, 'Unprocessable Content', `${first.field}: ${first.message}`, { errors: problems });
}

export function assertValid(problems: FieldProblem[]): void {
  if (problems.length > 0) throw invalidFields(problems);
}

/** RFC 3339 text of a time, or null. */
export const iso = (value: Date | null | undefined): string | null => (value ? value.toISOString() : null);
