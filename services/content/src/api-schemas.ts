import { z } from 'zod';
import { isDigest, isValidRepositoryName, isValidTag } from '@flotilla/protocol';

/** The content API's request schemas: validated at the boundary and published as OpenAPI. */

export const repositoryName = z
  .string()
  .refine(isValidRepositoryName, 'invalid repository name')
  .meta({ description: 'Repository name, e.g. fedora/httpd', example: 'fedora/httpd' });
export const tagName = z.string().refine(isValidTag, 'invalid tag').meta({ example: '39' });
export const digestString = z
  .string()
  .refine(isDigest, 'invalid digest')
  .meta({ example: `sha256:${'0'.repeat(64)}` });
export const channelName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,63}$/, 'invalid channel name')
  .meta({ example: 'testing' });
const tagGlob = z.string().regex(/^[\w.*?-]{1,128}$/, 'invalid tag glob');
const reason = z.string().min(1).max(1000);

export const syncRequestSchema = z
  .object({
    repository: repositoryName,
    upstream: z
      .object({
        url: z.url({ protocol: /^https?$/ }),
        repository: repositoryName.optional(),
        username: z.string().min(1).max(256).optional(),
        password: z.string().min(1).max(4096).optional(),
      })
      .strict()
      .optional()
      .meta({ description: 'Defaults to our registry (FLOTILLA_REGISTRY_URL)' }),
    includeTags: z.array(tagGlob).max(100).optional(),
    excludeTags: z.array(tagGlob).max(100).optional(),
    mirror: z.boolean().optional().meta({ description: 'Drop tags the upstream no longer has' }),
    allowEmpty: z.boolean().optional().meta({
      description:
        'Mirror mode only: allow a sync that would leave a channel with tags empty (refused otherwise)',
    }),
    signedOnly: z
      .boolean()
      .optional()
      .meta({ description: 'Skip tags without a cosign signature upstream' }),
  })
  .strict();

export const gcRequestSchema = z
  .object({
    dryRun: z
      .boolean()
      .optional()
      .meta({ description: 'Report what would be removed; remove nothing' }),
  })
  .strict();

export const promotionRequestSchema = z
  .object({
    repository: repositoryName,
    tags: z.array(tagName).min(1).max(1000).optional(),
    digest: digestString.optional(),
    from: channelName,
    to: channelName,
    targetTags: z.array(tagName).min(1).max(1000).optional(),
    reason: reason.optional(),
  })
  .strict()
  .refine((p) => (p.tags === undefined) !== (p.digest === undefined), {
    message: 'give tags or digest (one of them)',
  });

export const untagRequestSchema = z
  .object({
    repository: repositoryName,
    channel: channelName,
    tags: z.array(tagName).min(1).max(1000),
    reason: reason.optional(),
  })
  .strict();

export const rollbackRequestSchema = z
  .object({
    repository: repositoryName,
    channel: channelName,
    version: z.number().int().min(1),
    reason: reason.optional(),
  })
  .strict();

export const publicationRequestSchema = z
  .object({
    channel: channelName.optional().meta({ description: 'Default stable' }),
    repositories: z.array(repositoryName).min(1).max(10_000).optional(),
  })
  .strict();

export const signRequestSchema = z
  .object({
    channel: channelName.meta({
      description: 'Re-sign what this channel holds with the current key',
    }),
    repositories: z.array(repositoryName).min(1).max(10_000).optional(),
  })
  .strict();

const intParam = z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const repositoryQuerySchema = z
  .object({
    channel: channelName.optional(),
    version: intParam.optional(),
    compare: intParam
      .optional()
      .meta({ description: 'Another version of the channel: answer includes the diff' }),
    details: z.enum(['true', 'false']).optional().meta({
      description:
        'true: add `manifests`, a summary (size, platforms, created) of every manifest a tag names',
    }),
  })
  .strict();

export const repositoryListQuerySchema = z
  .object({
    q: z.string().max(255).optional().meta({ description: 'Only names containing this text' }),
    channel: channelName
      .optional()
      .meta({ description: 'Only repositories with content in this channel' }),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(1000)
      .optional()
      .meta({ description: 'A page of this many (default: all)' }),
    offset: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  })
  .strict();

export const promotionsQuerySchema = z
  .object({
    repository: repositoryName.optional(),
    channel: channelName.optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();

/** `GET /api/v1/publications/<n>`: one page of the digests it added, after a digest. */
export const publicationQuerySchema = z
  .object({
    after: z
      .string()
      .regex(/^sha256:[a-f0-9]{64}$/)
      .optional(),
    limit: z.coerce.number().int().min(1).max(10_000).optional(),
  })
  .strict();

export const tasksQuerySchema = z
  .object({
    state: z.enum(['waiting', 'running', 'completed', 'failed', 'canceled']).optional(),
    kind: z.enum(['sync', 'publish', 'retention', 'reconcile', 'gc', 'sign']).optional(),
    repository: repositoryName.optional(),
    limit: z.coerce.number().int().min(1).max(1000).optional(),
  })
  .strict();

export const taskSchema = z.object({
  id: z.string(),
  kind: z.enum(['sync', 'publish', 'retention', 'reconcile', 'gc', 'sign']),
  state: z.enum(['waiting', 'running', 'completed', 'failed', 'canceled']),
  repository: z.string().optional(),
  channel: z.string().optional(),
  params: z.record(z.string(), z.unknown()),
  progress: z
    .object({
      done: z.number().optional(),
      total: z.number().optional(),
      bytesDone: z.number().optional(),
      bytesTotal: z.number().optional(),
      message: z.string().optional(),
    })
    .optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  error: z
    .object({
      message: z.string(),
      code: z.string().optional(),
      details: z.record(z.string(), z.unknown()).optional(),
    })
    .optional(),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  attempts: z.number(),
  worker: z.string().optional(),
  cancelRequested: z.boolean().optional(),
});

export const problemSchema = z
  .object({
    type: z.string().optional(),
    title: z.string(),
    status: z.number(),
    detail: z.string().optional(),
    instance: z.string().optional(),
  })
  .loose();

export type SyncRequest = z.infer<typeof syncRequestSchema>;
export type PromotionRequestBody = z.infer<typeof promotionRequestSchema>;
export type PublicationRequest = z.infer<typeof publicationRequestSchema>;
export type TaskView = z.infer<typeof taskSchema>;
