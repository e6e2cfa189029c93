/**
 * What must hold of a Flotilla installation after any fault, checked from outside through its
 * public faces only (the registry's V2 API, the content API, the `flotilla` CLI and the files of
 * the published tree), so the checks keep meaning the same thing while the internals change.
 *
 * Each check returns the violations it found as one-line strings (empty when it holds), so a
 * fault-injection run can collect them per invariant and print them with its seed.
 *
 * ```ts
 * const violations = await publishedTreeWhole(publishDir);
 * ```
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContentClient, TaskView } from '@flotilla/content';
import { flotillaCli, waitFor } from './flotilla.js';

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

const FINAL_TASK_STATES = ['completed', 'failed', 'canceled'];

export interface PushedTag {
  repository: string;
  tag: string;
  digest: string;
}

/** `flotilla registry fsck` exits 0: no corrupt blob, no dangling link. */
export async function registryFsckClean(env: NodeJS.ProcessEnv): Promise<string[]> {
  const result = await flotillaCli(env, ['registry', 'fsck'], { allowFailure: true });
  if (result.code === 0) return [];
  return [
    `registry fsck exited ${result.code}: ${(result.stdout + result.stderr).trim().slice(0, 2000)}`,
  ];
}

interface ManifestShape {
  manifests?: Array<{ digest: string }>;
  config?: { digest: string };
  layers?: Array<{ digest: string }>;
}

/** Every tag of every repository in the registry's catalog answers its manifest, and every blob and child it names answers too. */
export async function registryTagsResolve(
  registryUrl: string,
  authorization: string,
): Promise<string[]> {
  const violations: string[] = [];
  const headers = { authorization };
  const catalog = (await (
    await fetch(`${registryUrl}/v2/_catalog?n=10000`, { headers })
  ).json()) as { repositories?: string[] };
  for (const repository of catalog.repositories ?? []) {
    const list = await fetch(`${registryUrl}/v2/${repository}/tags/list`, { headers });
    if (list.status !== 200) {
      violations.push(`${repository}: tags/list answered ${list.status}`);
      continue;
    }
    const { tags } = (await list.json()) as { tags?: string[] | null };
    for (const tag of tags ?? []) {
      const pending = [tag];
      for (let i = 0; i < pending.length && i < 64; i++) {
        const reference = pending[i] as string;
        const res = await fetch(`${registryUrl}/v2/${repository}/manifests/${reference}`, {
          headers: { ...headers, accept: MANIFEST_ACCEPT },
        });
        if (res.status !== 200) {
          violations.push(`${repository}:${tag}: manifest ${reference} answered ${res.status}`);
          continue;
        }
        const manifest = (await res.json()) as ManifestShape;
        for (const child of manifest.manifests ?? []) pending.push(child.digest);
        for (const blob of [
          ...(manifest.config ? [manifest.config] : []),
          ...(manifest.layers ?? []),
        ]) {
          const head = await fetch(`${registryUrl}/v2/${repository}/blobs/${blob.digest}`, {
            method: 'HEAD',
            headers,
          });
          if (head.status !== 200)
            violations.push(`${repository}:${tag}: blob ${blob.digest} answered ${head.status}`);
        }
      }
    }
  }
  return violations;
}

/** The tags the registry holds, read through its API (what "every pushed manifest" means after a crash). */
export async function registryTags(
  registryUrl: string,
  authorization: string,
): Promise<PushedTag[]> {
  const headers = { authorization };
  const catalog = (await (
    await fetch(`${registryUrl}/v2/_catalog?n=10000`, { headers })
  ).json()) as { repositories?: string[] };
  const out: PushedTag[] = [];
  for (const repository of catalog.repositories ?? []) {
    const { tags } = (await (
      await fetch(`${registryUrl}/v2/${repository}/tags/list`, { headers })
    ).json()) as { tags?: string[] | null };
    for (const tag of tags ?? []) {
      const res = await fetch(`${registryUrl}/v2/${repository}/manifests/${tag}`, {
        method: 'HEAD',
        headers: { ...headers, accept: MANIFEST_ACCEPT },
      });
      const digest = res.headers.get('docker-content-digest');
      if (res.status === 200 && digest) out.push({ repository, tag, digest });
    }
  }
  return out;
}

/**
 * Each channel's versions are numbered without gaps, the current one is the newest, and every
 * version a promotion made has its audit record (the audit trail is the release record).
 */
export async function channelVersionsContiguous(content: ContentClient): Promise<string[]> {
  const violations: string[] = [];
  for (const summary of await content.repositories()) {
    for (const [channel, current] of Object.entries(summary.channels)) {
      if (current === 0) continue;
      const detail = await content.repository(summary.name, { channel });
      const numbers = (detail.versions ?? []).map((v) => v.number).sort((a, b) => a - b);
      const newest = numbers[numbers.length - 1];
      if (newest !== current)
        violations.push(
          `${summary.name} ${channel}: current version ${current}, newest stored ${String(newest)}`,
        );
      for (let i = 1; i < numbers.length; i++) {
        if (numbers[i] !== (numbers[i - 1] as number) + 1)
          violations.push(`${summary.name} ${channel}: versions ${numbers.join(',')} have a gap`);
      }
    }
  }
  return violations;
}

/** Every channel version made by a promotion has an audit record naming it. */
export async function promotionsAudited(content: ContentClient): Promise<string[]> {
  const violations: string[] = [];
  for (const summary of await content.repositories()) {
    const trail = await content.promotions({ repository: summary.name });
    for (const [channel, current] of Object.entries(summary.channels)) {
      if (current === 0) continue;
      const detail = (await content.repository(summary.name, { channel })) as {
        versions?: Array<{ number: number; cause?: { kind?: string } }>;
      };
      for (const version of detail.versions ?? []) {
        if (version.cause?.kind !== 'promotion') continue;
        const audited = trail.some(
          (p) =>
            p.to === channel &&
            (p.after as { version?: number } | undefined)?.version === version.number,
        );
        if (!audited)
          violations.push(
            `${summary.name} ${channel} version ${version.number} was made by a promotion that has no audit record`,
          );
      }
    }
  }
  return violations;
}

async function exists(file: string): Promise<boolean> {
  return readFile(file).then(
    () => true,
    () => false,
  );
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else if (entry.name.endsWith('.json')) out.push(full);
  }
  return out;
}

/** Directories under the publish root (the root itself included, two levels deep) that hold a PUBLICATION marker. */
async function publishedTrees(root: string): Promise<string[]> {
  const trees: string[] = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    if (await exists(join(dir, 'PUBLICATION'))) trees.push(dir);
    if (depth === 0) return;
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (
        entry.isDirectory() &&
        !['blobs', 'repositories', 'publications', '.staging'].includes(entry.name)
      )
        await visit(join(dir, entry.name), depth - 1);
    }
  };
  await visit(root, 2);
  return trees;
}

/**
 * Every published tree is whole: PUBLICATION names a publication whose record exists, and every
 * manifest and blob any repository metadata file names is in the tree with the right hash (blobs
 * are looked up in the tree and then at the publish root, where a shared blob store would be).
 */
export async function publishedTreeWhole(root: string): Promise<string[]> {
  const violations: string[] = [];
  for (const tree of await publishedTrees(root)) {
    const marker = (await readFile(join(tree, 'PUBLICATION'), 'utf8')).trim();
    if (!/^[1-9][0-9]*$/.test(marker)) {
      violations.push(`${tree}/PUBLICATION holds ${JSON.stringify(marker)}`);
      continue;
    }
    // A channel's view (channels/<channel>/) shares the root's publication records.
    const record = join('publications', `${marker}.json`);
    if (!(await exists(join(tree, record))) && !(await exists(join(root, record))))
      violations.push(`${tree}: PUBLICATION ${marker} has no publications/${marker}.json`);
    for (const file of await filesUnder(join(tree, 'repositories'))) {
      let meta: { manifests?: Record<string, { data?: string }>; blobs?: Record<string, number> };
      try {
        meta = JSON.parse(await readFile(file, 'utf8')) as typeof meta;
      } catch (err) {
        violations.push(`${file} does not parse: ${String(err)}`);
        continue;
      }
      for (const [digest, manifest] of Object.entries(meta.manifests ?? {})) {
        const hex = digest.slice('sha256:'.length);
        if (
          manifest.data !== undefined &&
          createHash('sha256').update(Buffer.from(manifest.data, 'base64')).digest('hex') !== hex
        ) {
          violations.push(`${file}: manifest ${digest} data does not hash to its digest`);
        }
      }
      for (const digest of [
        ...Object.keys(meta.manifests ?? {}),
        ...Object.keys(meta.blobs ?? {}),
      ]) {
        const hex = digest.slice('sha256:'.length);
        const relative = join('blobs', 'sha256', hex.slice(0, 2), hex);
        const bytes = await readFile(join(tree, relative)).catch(() =>
          readFile(join(root, relative)).catch(() => undefined),
        );
        if (bytes === undefined) violations.push(`${file}: ${digest} is not in the tree`);
        else if (createHash('sha256').update(bytes).digest('hex') !== hex)
          violations.push(`${file}: ${relative} does not hash to its name`);
      }
    }
  }
  return violations;
}

/**
 * Once nothing new is submitted, every task ends (completed, failed or canceled) within
 * `timeoutMs`: a task whose worker died is taken back when its lease expires, never left running.
 */
export async function tasksSettle(content: ContentClient, timeoutMs: number): Promise<string[]> {
  let open: TaskView[] = [];
  try {
    await waitFor(
      'every task to end',
      async () => {
        open = (await content.tasks()).filter((t) => !FINAL_TASK_STATES.includes(t.state));
        return open.length === 0 ? true : undefined;
      },
      timeoutMs,
      500,
    );
    return [];
  } catch {
    return open.map(
      (t) =>
        `task ${t.id} (${t.kind}${t.repository ? ` ${t.repository}` : ''}) still ${t.state} after ${timeoutMs} ms, attempts ${t.attempts}`,
    );
  }
}

/** Every tag given is in its repository's candidate channel with the same digest within `timeoutMs`. */
export async function tagsReachCandidate(
  content: ContentClient,
  tags: PushedTag[],
  timeoutMs: number,
): Promise<string[]> {
  const missing = async (): Promise<PushedTag[]> => {
    const out: PushedTag[] = [];
    for (const t of tags) {
      const detail = await content.repository(t.repository).catch(() => undefined);
      const candidate = detail?.channels.find((c) => c.name === 'candidate');
      if (candidate?.tags[t.tag] !== t.digest) out.push(t);
    }
    return out;
  };
  let left: PushedTag[] = tags;
  try {
    await waitFor(
      'every tag in candidate',
      async () => {
        left = await missing();
        return left.length === 0 ? true : undefined;
      },
      timeoutMs,
      500,
    );
    return [];
  } catch {
    return left.map((t) => `${t.repository}:${t.tag} (${t.digest}) never reached candidate`);
  }
}
