import { randomUUID } from 'node:crypto';
import { faultPoint } from '@flotilla/kit';
import {
  createEvent,
  eventIdFor,
  isSignatureTag,
  signatureTag,
  type EventEnvelope,
} from '@flotilla/protocol';
import type { Filter } from '@flotilla/store';
import { trustedKeysFor } from '../signing/keys.js';
import type { Signatures } from '../signing/signatures.js';
import type { ChannelPolicy } from '../config.js';
import { DuplicateKeyError } from '@flotilla/store';
import type {
  ChannelVersionDoc,
  ContentCollections,
  PromotionDoc,
  TagEntry,
  VersionAudit,
} from '../collections.js';
import type { Catalog } from './catalog.js';
import type { ChannelStore, CommitResult } from './channels.js';
import { contentProblem } from './errors.js';

export interface EventSink {
  enqueue(event: EventEnvelope): Promise<void>;
}

export interface PromotionRequest {
  repository: string;
  tags?: string[];
  digest?: string;
  from: string;
  to: string;
  targetTags?: string[];
  reason?: string;
  actor: string;
}

/** A validated promotion: what will be written, computed without writing anything. */
export interface PromotionPlan {
  request: PromotionRequest;
  /** target tag → digest */
  moves: TagEntry[];
  sourceTags: string[];
}

/** Signing on promotion: into these channels, every promoted manifest gets the current key's signature. */
export interface PromotionSigning {
  signatures: Signatures;
  channels: readonly string[];
}

/** The target channel moved while signatures were being made for it: make them again. */
class TargetMoved extends Error {}

const MAX_SIGNING_ATTEMPTS = 5;

export interface ChangeResult {
  promotion: PromotionDoc & { _id: string };
  version: ChannelVersionDoc;
  changed: boolean;
}

/**
 * Promotion, untag and rollback: each makes a new version of one channel and an audit record
 * (`promotions`: who, when, why, before and after), then announces itself through the outbox.
 */
export class Promotions {
  private lastSeq = 0;

  constructor(
    private readonly c: ContentCollections,
    private readonly channels: ChannelStore,
    private readonly catalog: Catalog,
    private readonly policy: ChannelPolicy,
    private readonly events: EventSink,
    private readonly signing?: PromotionSigning,
  ) {}

  isSigningChannel(channel: string): boolean {
    return this.signing?.channels.includes(channel) ?? false;
  }

  /** Validates a promotion against the current content and the policy; writes nothing. */
  async plan(request: PromotionRequest): Promise<PromotionPlan> {
    const { repository, from, to } = request;
    this.channels.assertChannel(from);
    this.channels.assertChannel(to);
    if (from === to)
      throw contentProblem('invalid-request', 'from and to must be different channels');
    await this.channels.repository(repository);
    const source = (await this.channels.current(repository, from))?.tags ?? [];
    const sourceMap = new Map(source.map((t) => [t.tag, t.digest]));

    let sourceTags: string[];
    let digests: string[];
    if (request.tags && request.tags.length > 0) {
      if (request.digest) throw contentProblem('invalid-request', 'give tags or digest, not both');
      sourceTags = [...request.tags];
      digests = sourceTags.map((tag) => {
        const digest = sourceMap.get(tag);
        if (!digest)
          throw contentProblem(
            'unknown-tag',
            `${repository} has no tag "${tag}" in channel ${from}`,
            { tag },
          );
        return digest;
      });
    } else if (request.digest) {
      const digest = request.digest;
      sourceTags = source.filter((t) => t.digest === digest).map((t) => t.tag);
      if (sourceTags.length === 0 && !(await this.reachable(source, digest))) {
        throw contentProblem(
          'unknown-digest',
          `${digest} is not in channel ${from} of ${repository}`,
        );
      }
      if (!request.targetTags || request.targetTags.length === 0) {
        if (sourceTags.length === 0) {
          throw contentProblem(
            'invalid-request',
            `${digest} has no tag in ${from}: give targetTags`,
          );
        }
      }
      digests = sourceTags.map(() => digest);
      if (request.targetTags && request.targetTags.length > 0)
        digests = request.targetTags.map(() => digest);
    } else {
      throw contentProblem('invalid-request', 'give tags or digest');
    }

    let targetTags = sourceTags;
    if (request.targetTags && request.targetTags.length > 0) {
      if (request.tags && request.targetTags.length !== request.tags.length) {
        throw contentProblem('invalid-request', 'targetTags must name one target tag per tag');
      }
      targetTags = [...request.targetTags];
    }
    if (new Set(targetTags).size !== targetTags.length) {
      throw contentProblem('invalid-request', 'target tags must be distinct');
    }

    const rule = this.policy[to];
    if (rule) {
      const required = (await this.channels.current(repository, rule.requires))?.tags ?? [];
      const present = new Set(required.map((t) => t.digest));
      const missing = [...new Set(digests)].filter((d) => !present.has(d));
      if (missing.length > 0) {
        throw contentProblem(
          'policy-refused',
          `channel ${to} requires content to be in ${rule.requires} first; not there: ${missing.join(', ')}`,
          { requires: rule.requires, missing },
        );
      }
    }
    const moves = targetTags.map((tag, i) => ({ tag, digest: digests[i] as string }));
    if (moves.some((m) => isSignatureTag(m.tag))) {
      throw contentProblem(
        'invalid-request',
        'signature tags move with what they sign; promote the signed tag',
      );
    }
    await this.requireTrustedSignatures(request, source, moves, sourceTags);
    return { request, moves, sourceTags };
  }

  async promote(request: PromotionRequest): Promise<ChangeResult> {
    return this.apply(await this.plan(request));
  }

  /** Writes a planned promotion (re-checked against the newest target content on a lost race). */
  async apply(plan: PromotionPlan): Promise<ChangeResult> {
    const { request, moves } = plan;
    const audit = auditOf({
      actor: request.actor,
      reason: request.reason,
      from: request.from,
      tags: plan.sourceTags,
      targetTags: moves.map((m) => m.tag),
      digests: [...new Set(moves.map((m) => m.digest))],
    });
    let commit: CommitResult | undefined;
    for (let attempt = 0; !commit; attempt++) {
      const target = await this.channels.current(request.repository, request.to);
      const signatureMoves = await this.signatureMoves(plan, target?.tags ?? []);
      const all = [...moves, ...signatureMoves];
      const orphaned = await this.orphanedSignatures(target?.tags ?? [], all);
      const replaced = new Set([...all.map((m) => m.tag), ...orphaned]);
      try {
        commit = await this.channels.commit(
          request.repository,
          request.to,
          (current, currentVersion) => {
            // Signatures were made for the target's content as it was; never drop a newer one.
            const computed = signatureMoves.length > 0 || orphaned.length > 0;
            if (computed && (currentVersion?.number ?? 0) !== (target?.number ?? 0))
              throw new TargetMoved();
            return [...current.filter((t) => !replaced.has(t.tag)), ...all];
          },
          { kind: 'promotion', audit },
        );
      } catch (err) {
        if (!(err instanceof TargetMoved)) throw err;
        if (attempt + 1 >= MAX_SIGNING_ATTEMPTS) {
          throw contentProblem(
            'concurrent-update',
            `too many concurrent changes to ${request.repository} ${request.to}; retry`,
          );
        }
      }
    }
    faultPoint('promotion.version-committed');
    const promotion = await this.record('promotion', commit, audit);
    faultPoint('promotion.audited');
    await this.announce(promotion);
    return { promotion, version: commit.version, changed: commit.changed };
  }

  async untag(input: {
    repository: string;
    channel: string;
    tags: string[];
    actor: string;
    reason?: string;
  }): Promise<ChangeResult> {
    this.channels.assertChannel(input.channel);
    await this.channels.repository(input.repository);
    const id = randomUUID();
    const auditFor = (current: TagEntry[]): VersionAudit =>
      auditOf({
        id,
        actor: input.actor,
        reason: input.reason,
        tags: input.tags,
        targetTags: [],
        digests: [
          ...new Set(current.filter((t) => input.tags.includes(t.tag)).map((t) => t.digest)),
        ],
      });
    const commit = await this.channels.commit(
      input.repository,
      input.channel,
      (current) => {
        const have = new Set(current.map((t) => t.tag));
        const unknown = input.tags.filter((t) => !have.has(t));
        if (unknown.length > 0) {
          throw contentProblem(
            'unknown-tag',
            `${input.repository} has no tag ${unknown.join(', ')} in ${input.channel}`,
          );
        }
        return current.filter((t) => !input.tags.includes(t.tag));
      },
      (current) => ({ kind: 'untag', audit: auditFor(current) }),
    );
    faultPoint('untag.version-committed');
    const promotion = await this.record('untag', commit, auditFor(commit.before?.tags ?? []));
    return { promotion, version: commit.version, changed: commit.changed };
  }

  async rollback(input: {
    repository: string;
    channel: string;
    version: number;
    actor: string;
    reason?: string;
  }): Promise<ChangeResult> {
    this.channels.assertChannel(input.channel);
    await this.channels.repository(input.repository);
    const target = await this.channels.version(input.repository, input.channel, input.version);
    const audit = auditOf({
      actor: input.actor,
      reason: input.reason ?? `rollback to version ${input.version}`,
      tags: target.tags.map((t) => t.tag),
      targetTags: target.tags.map((t) => t.tag),
      digests: [...new Set(target.tags.map((t) => t.digest))],
    });
    const commit = await this.channels.commit(input.repository, input.channel, () => target.tags, {
      kind: 'rollback',
      ref: String(input.version),
      audit,
    });
    faultPoint('rollback.version-committed');
    const promotion = await this.record('rollback', commit, audit);
    return { promotion, version: commit.version, changed: commit.changed };
  }

  /**
   * Writes the audit record of every version whose change was committed but whose record was not
   * (a crash between the two writes), and announces the promotions among them. Run at start.
   */
  async repairAudit(): Promise<number> {
    // Causes only (no tag lists): the whole version is read for the few records missing.
    const audited = await this.c.channelVersions.find(
      { 'cause.audit': { $exists: true } },
      { projection: { _id: 1, cause: 1 } },
    );
    let repaired = 0;
    for (let i = 0; i < audited.length; i += AUDIT_BATCH) {
      const batch = audited.slice(i, i + AUDIT_BATCH);
      const ids = batch.map((v) => (v.cause.audit as VersionAudit).id);
      const have = new Set(
        (await this.c.promotions.find({ _id: { $in: ids } }, { projection: { _id: 1 } })).map(
          (p) => p._id,
        ),
      );
      for (const { _id, cause } of batch) {
        const audit = cause.audit as VersionAudit;
        if (have.has(audit.id)) continue;
        const version = await this.c.channelVersions.findOne({ _id });
        if (!version) continue; // gc removed it meanwhile
        // The version before it in the same channel, unless gc removed it since.
        const before = await this.channels
          .version(version.repository, version.channel, version.number - 1)
          .catch(() => undefined);
        const kind = version.cause.kind as PromotionDoc['kind'];
        await this.record(
          kind,
          {
            version,
            before: before ?? { ...version, number: version.number - 1, tags: [] },
            changed: true,
          },
          audit,
          version.createdAt,
        );
        repaired++;
      }
    }
    // Promotions recorded whose events a crash kept out of the outbox (repaired ones included).
    for (const promotion of await this.c.promotions.find({ kind: 'promotion', announced: false }))
      await this.announce(promotion);
    return repaired;
  }

  /**
   * The `sha256-<hex>.sig` tags that go with a promotion: for every manifest reachable from the
   * promoted digests, the source's and the target's signatures combined, plus one by the
   * current key when the target is a signing channel. Only tags whose target changes.
   */
  private async signatureMoves(plan: PromotionPlan, targetTags: TagEntry[]): Promise<TagEntry[]> {
    if (!this.signing) return [];
    const { request, moves } = plan;
    const source = (await this.channels.current(request.repository, request.from))?.tags ?? [];
    const sourceMap = new Map(source.map((t) => [t.tag, t.digest]));
    const targetMap = new Map(targetTags.map((t) => [t.tag, t.digest]));
    const { manifests } = await this.catalog.closure(moves.map((m) => m.digest));
    const signNow = this.isSigningChannel(request.to);
    const out: TagEntry[] = [];
    for (const digest of manifests.keys()) {
      const tag = signatureTag(digest);
      const inTarget = targetMap.get(tag);
      const combined = await this.signing.signatures.combine(
        request.repository,
        digest,
        [inTarget, sourceMap.get(tag)],
        signNow,
      );
      if (combined && combined !== inTarget) {
        out.push({ tag, digest: combined });
        faultPoint('content.sign.attachment-made');
      }
    }
    return out;
  }

  /**
   * Signature tags the target would keep after `moves` for manifests none of its tags reach any
   * more (a tag moved to another digest): they go in the same version.
   */
  private async orphanedSignatures(targetTags: TagEntry[], moves: TagEntry[]): Promise<string[]> {
    if (!this.signing) return [];
    const moved = new Set(moves.map((m) => m.tag));
    const after = [...targetTags.filter((t) => !moved.has(t.tag)), ...moves];
    const signatureTags = after.filter((t) => isSignatureTag(t.tag)).map((t) => t.tag);
    if (signatureTags.length === 0) return [];
    const { manifests } = await this.catalog.closure(
      after.filter((t) => !isSignatureTag(t.tag)).map((t) => t.digest),
    );
    const kept = new Set([...manifests.keys()].map(signatureTag));
    return signatureTags.filter((t) => !kept.has(t));
  }

  /**
   * Into a signing channel, a repository with trusted build keys takes only content that carries
   * a valid signature by one of them for its digest; the refusal names every tag and why.
   */
  private async requireTrustedSignatures(
    request: PromotionRequest,
    source: TagEntry[],
    moves: TagEntry[],
    sourceTags: string[],
  ): Promise<void> {
    if (!this.signing || !this.isSigningChannel(request.to)) return;
    const trusted = trustedKeysFor(this.signing.signatures.keys, request.repository);
    if (trusted.length === 0) return;
    const sourceMap = new Map(source.map((t) => [t.tag, t.digest]));
    const refused: { tag: string; digest: string; reason: string }[] = [];
    for (const [i, move] of moves.entries()) {
      const check = await this.signing.signatures.check(
        sourceMap.get(signatureTag(move.digest)),
        move.digest,
        trusted,
      );
      if (check.signedBy.length === 0) {
        refused.push({
          tag: sourceTags[i] ?? move.tag,
          digest: move.digest,
          reason: check.reason ?? 'not signed',
        });
      }
    }
    if (refused.length > 0) {
      throw contentProblem(
        'signature-required',
        `${request.to} takes only content signed by a trusted build key (${trusted.map((k) => k.id).join(', ')}); ` +
          refused.map((r) => `${r.tag}: ${r.reason}`).join('; '),
        { tags: refused, trustedKeys: trusted.map((k) => k.id) },
      );
    }
  }

  async trail(filter: {
    repository?: string;
    channel?: string;
    limit?: number;
  }): Promise<(PromotionDoc & { _id: string })[]> {
    const query: Filter<PromotionDoc> = {};
    if (filter.repository) query.repository = filter.repository;
    if (filter.channel) query.$or = [{ to: filter.channel }, { from: filter.channel }];
    return this.c.promotions.find(query, { sort: { seq: -1 }, limit: filter.limit ?? 100 });
  }

  /**
   * The audit record of a committed change, under the id its version names: written once whoever
   * writes it (the change itself, or the repair after a crash).
   */
  private async record(
    kind: PromotionDoc['kind'],
    commit: { version: ChannelVersionDoc; before: ChannelVersionDoc | undefined; changed: boolean },
    audit: VersionAudit,
    time?: string,
  ): Promise<PromotionDoc & { _id: string }> {
    const at = time ?? new Date().toISOString();
    this.lastSeq = Math.max(Date.parse(at) * 1000, this.lastSeq + 1);
    const doc: PromotionDoc & { _id: string } = {
      _id: audit.id,
      kind,
      repository: commit.version.repository,
      ...(audit.from !== undefined ? { from: audit.from } : {}),
      to: commit.version.channel,
      tags: audit.tags,
      targetTags: audit.targetTags,
      digests: audit.digests,
      actor: audit.actor,
      ...(audit.reason !== undefined ? { reason: audit.reason } : {}),
      time: at,
      seq: this.lastSeq,
      before: snapshot(commit.before),
      after: snapshot(commit.version),
      ...(kind === 'promotion' ? { announced: false } : {}),
    };
    try {
      return await this.c.promotions.insertOne(doc);
    } catch (err) {
      if (!(err instanceof DuplicateKeyError)) throw err;
      return (await this.c.promotions.findOne({ _id: audit.id })) ?? doc;
    }
  }

  /** Enqueues the promotion's events under ids derived from it, then marks it announced. */
  private async announce(promotion: PromotionDoc & { _id: string }): Promise<void> {
    for (const digest of promotion.digests) {
      await this.events.enqueue({
        ...createEvent('content.promoted', 'content', {
          repository: promotion.repository,
          from: promotion.from as string,
          to: promotion.to,
          tags: promotion.after.tags
            .filter((t) => t.digest === digest && promotion.targetTags.includes(t.tag))
            .map((t) => t.tag),
          digest,
          version: promotion.after.version,
          actor: promotion.actor,
          ...(promotion.reason ? { reason: promotion.reason } : {}),
        }),
        id: eventIdFor(`content.promoted|${promotion._id}|${digest}`),
      });
    }
    if (promotion.announced === false)
      await this.c.promotions.updateOne({ _id: promotion._id }, { $set: { announced: true } });
  }

  private async reachable(tags: TagEntry[], digest: string): Promise<boolean> {
    const { manifests } = await this.catalog.closure(tags.map((t) => t.digest));
    return manifests.has(digest);
  }
}

/** Batch of audit ids looked up at once by the repair. */
const AUDIT_BATCH = 500;

function auditOf(
  fields: Omit<VersionAudit, 'id' | 'reason'> & { id?: string; reason?: string | undefined },
): VersionAudit {
  const audit: VersionAudit = { ...fields, id: fields.id ?? randomUUID() };
  if (audit.reason === undefined) delete audit.reason;
  if (audit.from === undefined) delete audit.from;
  return audit;
}

function snapshot(version: ChannelVersionDoc | undefined): { version: number; tags: TagEntry[] } {
  return { version: version?.number ?? 0, tags: version?.tags ?? [] };
}
