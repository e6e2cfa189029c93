import type { ContentStore } from '../blobstore/content-store.js';
import type { Catalog } from './catalog.js';

/** What the console shows beside a tag: size, platforms, and when the image was built. */
export interface ManifestSummary {
  mediaType: string;
  kind: 'image' | 'index';
  /** Bytes a pull transfers: the manifest, and every config and layer it (or its children) names, once each. */
  size: number;
  /** When content first stored the manifest. */
  createdAt: string;
  /** The image config's `created` (for an index: the newest of its children's). */
  created?: string;
  /** `os/architecture[/variant]`, from the config (image) or the index's descriptors. */
  platforms: string[];
}

interface ImageConfig {
  os?: string;
  architecture?: string;
  variant?: string;
  created?: string;
}

/** At most this many manifests are summarised per answer (a repository page, not an export). */
const MAX_SUMMARIES = 500;

function platformName(
  p: { os?: unknown; architecture?: unknown; variant?: unknown } | undefined,
): string | undefined {
  if (!p || typeof p.os !== 'string' || typeof p.architecture !== 'string') return undefined;
  return [p.os, p.architecture, typeof p.variant === 'string' ? p.variant : undefined]
    .filter(Boolean)
    .join('/');
}

async function readJson<T>(store: ContentStore, digest: string): Promise<T | undefined> {
  try {
    return JSON.parse((await store.readBytes(digest)).toString('utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Summaries of the manifests `digests` name; unknown digests are left out. */
export async function summarizeManifests(
  digests: Iterable<string>,
  catalog: Catalog,
  store: ContentStore,
): Promise<Record<string, ManifestSummary>> {
  const roots = [...new Set(digests)].slice(0, MAX_SUMMARIES);
  const docs = await catalog.manifests(roots);
  const childDigests = [...docs.values()].flatMap((d) => d.children);
  const children = await catalog.manifests(childDigests);
  const out: Record<string, ManifestSummary> = {};

  const imageFacts = async (digest: string) => {
    const doc = docs.get(digest) ?? children.get(digest);
    if (!doc) return undefined;
    const config = doc.blobs.find((b) => /config/.test(b.mediaType)) ?? doc.blobs[0];
    const parsed = config ? await readJson<ImageConfig>(store, config.digest) : undefined;
    return { doc, platform: platformName(parsed), created: parsed?.created };
  };

  for (const digest of roots) {
    const doc = docs.get(digest);
    if (!doc) continue;
    if (doc.kind === 'image') {
      const facts = await imageFacts(digest);
      out[digest] = {
        mediaType: doc.mediaType,
        kind: 'image',
        size: doc.size + doc.blobs.reduce((sum, b) => sum + b.size, 0),
        createdAt: doc.createdAt,
        ...(facts?.created ? { created: facts.created } : {}),
        platforms: facts?.platform ? [facts.platform] : [],
      };
      continue;
    }
    const index = await readJson<{
      manifests?: Array<{ digest?: string; platform?: Record<string, unknown> }>;
    }>(store, digest);
    const platforms = (index?.manifests ?? [])
      .map((m) => platformName(m.platform))
      .filter((p): p is string => p !== undefined);
    const seen = new Set<string>();
    let size = doc.size;
    let created: string | undefined;
    for (const child of doc.children) {
      const c = children.get(child);
      if (!c) continue;
      size += c.size;
      for (const b of c.blobs) {
        if (seen.has(b.digest)) continue;
        seen.add(b.digest);
        size += b.size;
      }
      const facts = await imageFacts(child);
      if (facts?.created && (!created || facts.created > created)) created = facts.created;
    }
    out[digest] = {
      mediaType: doc.mediaType,
      kind: 'index',
      size,
      createdAt: doc.createdAt,
      ...(created ? { created } : {}),
      platforms,
    };
  }
  return out;
}
