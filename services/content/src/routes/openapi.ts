import type { Router } from 'express';
import { z } from 'zod';
import {
  gcRequestSchema,
  problemSchema,
  promotionRequestSchema,
  promotionsQuerySchema,
  publicationQuerySchema,
  publicationRequestSchema,
  repositoryQuerySchema,
  rollbackRequestSchema,
  syncRequestSchema,
  taskSchema,
  tasksQuerySchema,
  untagRequestSchema,
} from '../api-schemas.js';
import type { ContentAppDeps } from '../app.js';
import { bodhiPayloadSchema } from '../hooks/bodhi.js';
import { distributionEnvelopeSchema } from '../hooks/distribution.js';

type Json = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output' = 'input'): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    target: 'draft-2020-12',
  }) as Json;
  return rest;
}

function queryParameters(schema: z.ZodObject): Json[] {
  const js = jsonSchema(schema) as { properties?: Record<string, Json> };
  return Object.entries(js.properties ?? {}).map(([name, s]) => ({
    name,
    in: 'query',
    required: false,
    schema: s,
  }));
}

const problem = {
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
};
const errors = (...codes: number[]): Json =>
  Object.fromEntries(codes.map((c) => [String(c), { description: 'problem', ...problem }]));
const body = (schema: z.ZodType, type = 'application/json'): Json => ({
  required: true,
  content: { [type]: { schema: jsonSchema(schema) } },
});
const ok = (description: string, schema: Json = { type: 'object' }): Json => ({
  description,
  content: { 'application/json': { schema } },
});
const taskRef = { $ref: '#/components/schemas/Task' };
const bearer = [{ bearer: [] }];

/** OpenAPI 3.1 of the content API, generated from the same zod schemas the routes validate with. */
export function buildOpenApi(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Flotilla content API',
      version: '1',
      description: 'Sync, channels and versions, promotion, publishing, tasks',
    },
    servers: [{ url: '/api/v1' }],
    security: bearer,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'FLOTILLA_API_TOKEN (admin) or a read-only token',
        },
      },
      schemas: {
        Task: jsonSchema(taskSchema, 'output'),
        Problem: jsonSchema(problemSchema, 'output'),
      },
    },
    paths: {
      '/repositories': {
        get: {
          summary: 'List repositories and their channels’ current versions',
          responses: { 200: ok('repositories'), ...errors(401) },
        },
      },
      '/repositories/{name}': {
        get: {
          summary:
            'Channels, versions and tags of one repository (name may contain /); with compare, the diff',
          parameters: [
            { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
            ...queryParameters(repositoryQuerySchema),
          ],
          responses: { 200: ok('repository'), ...errors(400, 401, 404) },
        },
      },
      '/syncs': {
        post: {
          summary: 'Start a sync task (upstream defaults to our registry)',
          requestBody: body(syncRequestSchema),
          responses: {
            202: ok('task queued', { type: 'object', properties: { task: taskRef } }),
            ...errors(400, 401, 403),
          },
        },
      },
      '/promotions': {
        post: {
          summary: 'Promote tags or a digest from one channel to another',
          requestBody: body(promotionRequestSchema),
          responses: {
            201: ok('new version of the target channel'),
            ...errors(400, 401, 403, 404, 409),
          },
        },
        get: {
          summary: 'The audit trail',
          parameters: queryParameters(promotionsQuerySchema),
          responses: { 200: ok('promotions'), ...errors(400, 401) },
        },
      },
      '/untags': {
        post: {
          summary: 'Remove tags from a channel (a new version)',
          requestBody: body(untagRequestSchema),
          responses: { 201: ok('new version'), ...errors(400, 401, 403, 404) },
        },
      },
      '/rollbacks': {
        post: {
          summary: 'Make a new version of a channel with the content of an earlier one',
          requestBody: body(rollbackRequestSchema),
          responses: { 201: ok('new version'), ...errors(400, 401, 403, 404) },
        },
      },
      '/publications': {
        post: {
          summary: 'Start a publish task (channel defaults to stable)',
          requestBody: body(publicationRequestSchema),
          responses: {
            202: ok('task queued', { type: 'object', properties: { task: taskRef } }),
            ...errors(400, 401, 403, 404),
          },
        },
        get: {
          summary: 'Publications and what each added',
          responses: { 200: ok('publications'), ...errors(401) },
        },
      },
      '/publications/{n}': {
        get: {
          summary:
            'One publication: its repositories and a page of the digests it added (`next` → `?after=`)',
          parameters: [
            { name: 'n', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } },
            ...queryParameters(publicationQuerySchema),
          ],
          responses: { 200: ok('publication'), ...errors(400, 401, 404) },
        },
      },
      '/gc': {
        post: {
          summary:
            'Start a content store gc task: versions beyond the policy, then unreferenced manifests and blobs',
          requestBody: { ...body(gcRequestSchema), required: false },
          responses: {
            202: ok('task queued', { type: 'object', properties: { task: taskRef } }),
            ...errors(400, 401, 403),
          },
        },
      },
      '/tasks': {
        get: {
          summary: 'Tasks, newest first',
          parameters: queryParameters(tasksQuerySchema),
          responses: { 200: ok('tasks'), ...errors(400, 401) },
        },
      },
      '/tasks/{id}': {
        get: {
          summary: 'One task: state, progress, result, error',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            {
              name: 'wait',
              in: 'query',
              description:
                'seconds (0–60) to wait for the task to end before answering (a long poll)',
              schema: { type: 'number', minimum: 0, maximum: 60 },
            },
          ],
          responses: { 200: ok('task', taskRef), ...errors(400, 401, 404) },
        },
        delete: {
          summary:
            'Cancel a task (200 when canceled at once, 202 when a running task was asked to stop)',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: {
            200: ok('canceled', taskRef),
            202: ok('cancel requested', taskRef),
            ...errors(401, 403, 404, 409),
          },
        },
      },
      '/hooks/bodhi': {
        post: {
          summary:
            'Bodhi update webhook: promote the builds into the status channel, then publish it',
          security: [],
          parameters: [
            {
              name: 'X-Flotilla-Signature',
              in: 'header',
              required: true,
              schema: { type: 'string', pattern: '^sha256=[0-9a-f]{64}$' },
            },
            {
              name: 'X-Flotilla-Timestamp',
              in: 'header',
              required: true,
              schema: { type: 'string' },
            },
          ],
          requestBody: body(bodhiPayloadSchema),
          responses: {
            202: ok('promoted; publish task queued'),
            ...errors(400, 401, 404, 409, 503),
          },
        },
      },
      '/hooks/registry': {
        post: {
          summary: 'Docker Distribution notification envelope: sync each pushed repository',
          requestBody: body(
            distributionEnvelopeSchema,
            'application/vnd.docker.distribution.events.v2+json',
          ),
          responses: { 202: ok('sync tasks'), ...errors(400, 401, 403) },
        },
      },
      '/openapi.json': {
        get: { summary: 'This document', security: [], responses: { 200: ok('OpenAPI 3.1') } },
      },
    },
  };
}

export function mountOpenApi(router: Router, _deps: ContentAppDeps): void {
  let cached: Json | undefined;
  router.get('/openapi.json', (_req, res) => {
    cached ??= buildOpenApi();
    res.json(cached);
  });
}
