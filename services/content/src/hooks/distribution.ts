import { z } from 'zod';
import { isManifestMediaType, isValidRepositoryName } from '@flotilla/protocol';

/** Docker Distribution's notification envelope (`application/vnd.docker.distribution.events.v2+json`). */
export const distributionEnvelopeSchema = z.object({
  events: z
    .array(
      z
        .object({
          id: z.string().optional(),
          action: z.string(),
          target: z
            .object({
              mediaType: z.string().optional(),
              repository: z.string().optional(),
              digest: z.string().optional(),
              tag: z.string().optional(),
            })
            .loose()
            .optional(),
        })
        .loose(),
    )
    .max(10_000),
});
export type DistributionEnvelope = z.infer<typeof distributionEnvelopeSchema>;

/** Repositories that received a manifest push in this envelope (each once). */
export function pushedRepositories(envelope: DistributionEnvelope): string[] {
  const names = new Set<string>();
  for (const event of envelope.events) {
    const target = event.target;
    if (event.action !== 'push' || !target?.repository || !target.mediaType) continue;
    if (!isManifestMediaType(target.mediaType)) continue;
    if (isValidRepositoryName(target.repository)) names.add(target.repository);
  }
  return [...names];
}
