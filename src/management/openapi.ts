import { z } from 'zod';

import type { Route } from './route.js';
import { API_PREFIX } from './router.js';

const problem = {
  description: 'RFC 9457 problem details',
  content: {
    'application/problem+json': {
      schema: {
        type: 'object',
        properties: {
          type: { type: 'string' },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          errors: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
        },
      },
    },
  },
};

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request', 401: 'Missing or invalid token', 403: 'Insufficient scope', 404: 'Not found',
  409: 'Conflict', 413: 'Body too large', 422: 'Invalid field', 429: 'Too many requests', 503: 'Temporarily unavailable',
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output') {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
}

function queryParameters(schema: z.ZodType | undefined) {
  if (!schema) return [];
  const json = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({ name, in: 'query', required: json.required?.includes(name) ?? false, schema: s }));
}

/**
 * The OpenAPI 3.1 document of the Management API, generated from the same route declarations
 * the router validates with (JSON Schema 2020-12 is OpenAPI 3.1's schema dialect).
 */
export function buildOpenApi(routes: Route[], options: { issuer: string; version: string }) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters = [
      ...[...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...queryParameters(route.query),
    ];
    const errors = new Set([...(route.errors ?? []), ...((route.auth ?? 'management') === 'management' ? [401, 403] : []), ...(route.body ? [400, 422] : [])]);
    const status = route.status ?? (route.response ? 200 : 204);
    const operation: Record<string, unknown> = {
      operationId: `${route.method.toLowerCase()}${route.path.replace(/\{(\w+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      summary: route.summary,
      tags: [route.tag],
      ...(parameters.length ? { parameters } : {}),
      ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } } : {}),
      responses: {
        [status]: route.response
          ? { description: 'Success', content: { 'application/json': { schema: jsonSchema(route.response, 'output') } } }
          : { description: 'Success' },
        ...Object.fromEntries([...errors].sort().map((code) => [code, { ...problem, description: STATUS_TEXT[code] ?? 'Error' }])),
      },
      ...((route.auth ?? 'management') === 'management' ? { security: [{ bearer: route.scope ? [route.scope] : [] }] } : { security: [] }),
    };
    const key = `${API_PREFIX}${route.path}`;
    paths[key] ??= {};
    paths[key][route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Tessera Management API',
      version: options.version,
      description: 'Manage organizations, users, service accounts, clients, resource servers and long-lived tokens. Every call needs a Bearer token for the audience urn:tessera:management; errors are RFC 9457 problem details.',
    },
    servers: [{ url: options.issuer }],
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An access token (JWT), PAT or SAT whose audience is urn:tessera:management' },
      },
    },
    paths,
  };
}
