import { z } from 'zod';

/**
 * Building blocks of request schemas. Free text never carries control characters: they have no
 * place in a name, and PostgreSQL refuses NUL outright, which must be a 422 naming the field,
 * not a 500 from the database.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export const text = (max: number) =>
  z.string().trim().min(1).max(max).refine((value) => !CONTROL.test(value), 'must not contain control characters');

export const uriText = (max = 2048) =>
  z.string().min(1).max(max).refine((value) => !CONTROL.test(value) && !/\s/.test(value), 'must not contain spaces or control characters');
