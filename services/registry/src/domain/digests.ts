import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * Running digests of upload data. SHA-256 of a large upload is the biggest single cost on the
 * thread that also receives the body (≈ 0.15 s of CPU per 256 MiB even with SHA-NI), so by
 * default it runs on one hashing thread per process: the receiving thread hands it each staging
 * buffer (shared memory, no copy) and goes on receiving while the buffer is hashed and written.
 * See docs/bench/registry.md for the measurements.
 */
export interface RunningDigest {
  /**
   * Adds `chunk` (bytes in file order). The returned promise settles once the chunk has been
   * read, so its memory may be reused; it never rejects (a failure surfaces from `hex()`).
   */
  update(chunk: Buffer): Promise<void> | void;
  /** Hex digest of everything added so far; more may be added afterwards. */
  hex(): Promise<string>;
  /** Frees the state (a dropped session, a failed request). Idempotent. */
  dispose(): void;
}

export interface Digester {
  start(algorithm: string): RunningDigest;
  /** Stops the hashing thread; digests started later hash inline. */
  close(): Promise<void>;
}

/** Hashes on the calling thread: other algorithms, tests, and where no worker can start. */
export function inlineDigest(algorithm: string): RunningDigest {
  let hash: Hash | undefined = createHash(algorithm);
  return {
    update(chunk) {
      hash?.update(chunk);
    },
    async hex() {
      if (!hash) throw new Error('digest disposed');
      return hash.copy().digest('hex');
    },
    dispose() {
      hash = undefined;
    },
  };
}

/** Messages to the hashing thread: u = update, h = hex so far, x = dispose. */
type Request =
  | { op: 'u'; id: number; seq: number; memory: ArrayBufferLike; offset: number; length: number }
  | { op: 'h'; id: number; seq: number }
  | { op: 'x'; id: number };
type Reply = { seq: number; hex?: string; error?: string };

const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'x') { hashes.delete(m.id); return; }
  let hash = hashes.get(m.id);
  if (!hash) { hash = createHash('sha256'); hashes.set(m.id, hash); }
  try {
    if (m.op === 'u') { hash.update(new Uint8Array(m.memory, m.offset, m.length)); parentPort.postMessage({ seq: m.seq }); }
    else parentPort.postMessage({ seq: m.seq, hex: hash.copy().digest('hex') });
  } catch (err) {
    parentPort.postMessage({ seq: m.seq, error: String(err) });
  }
});
`;

/**
 * SHA-256 on a worker thread, every other algorithm inline. The thread is started on first use,
 * unref'd (it never keeps the process alive) and restarted after a crash; digests that were
 * running on a crashed thread fail at `hex()`, which the upload code treats like lost state (it
 * re-hashes the data on disk).
 */
export function createDigester(options: { thread?: boolean } = {}): Digester {
  let worker: Worker | undefined;
  let closed = options.thread === false;
  let nextId = 1;
  let nextSeq = 1;
  const pending = new Map<number, (reply: Reply) => void>();

  /** The running hashing thread (started on demand), or undefined to hash inline. */
  function thread(): Worker | undefined {
    if (closed) return undefined;
    if (!worker) {
      try {
        const started = new Worker(THREAD_SOURCE, { eval: true });
        started.unref();
        started.on('message', (reply: Reply) => {
          const resolve = pending.get(reply.seq);
          pending.delete(reply.seq);
          resolve?.(reply);
        });
        const lost = (why: string): void => {
          if (worker !== started) return;
          worker = undefined;
          for (const resolve of pending.values()) resolve({ seq: 0, error: why });
          pending.clear();
        };
        started.on('error', (err) => lost(String(err)));
        started.on('exit', (code) => lost(`hashing thread exited with code ${code}`));
        worker = started;
      } catch {
        closed = true; // no worker threads here: hash inline from now on
        return undefined;
      }
    }
    return worker;
  }

  function ask(
    target: Worker,
    message: Request & { seq: number },
    transfer?: ArrayBuffer[],
  ): Promise<Reply> {
    return new Promise((resolve) => {
      pending.set(message.seq, resolve);
      target.postMessage(message, transfer);
    });
  }

  function threadDigest(): RunningDigest | undefined {
    const holder = thread();
    if (!holder) return undefined;
    const id = nextId++;
    let failure: string | undefined;
    let disposed = false;
    // every request goes to the thread that holds this digest's state, or fails
    const send = (message: Request & { seq: number }, transfer?: ArrayBuffer[]): Promise<Reply> => {
      // a restarted thread is a new Worker: this digest's state died with the old one
      if (worker !== holder) return Promise.resolve({ seq: 0, error: 'hashing thread restarted' });
      return ask(holder, message, transfer);
    };
    return {
      update(chunk) {
        if (disposed || failure) return;
        let memory: ArrayBufferLike = chunk.buffer;
        let offset = chunk.byteOffset;
        let transfer: ArrayBuffer[] | undefined;
        if (!(memory instanceof SharedArrayBuffer)) {
          // private memory cannot be shared: send a copy of exactly these bytes
          const copy = new Uint8Array(chunk.length);
          copy.set(chunk);
          memory = copy.buffer;
          offset = 0;
          transfer = [copy.buffer];
        }
        return send(
          { op: 'u', id, seq: nextSeq++, memory, offset, length: chunk.length },
          transfer,
        ).then((reply) => {
          failure ??= reply.error;
        });
      },
      async hex() {
        if (disposed) throw new Error('digest disposed');
        if (failure) throw new Error(failure);
        const reply = await send({ op: 'h', id, seq: nextSeq++ });
        failure ??= reply.error;
        if (failure || reply.hex === undefined) throw new Error(failure ?? 'no digest');
        return reply.hex;
      },
      dispose() {
        if (disposed) return;
        disposed = true;
        if (worker === holder) holder.postMessage({ op: 'x', id } satisfies Request);
      },
    };
  }

  return {
    start(algorithm) {
      return (algorithm === 'sha256' ? threadDigest() : undefined) ?? inlineDigest(algorithm);
    },
    async close() {
      closed = true;
      const stopping = worker;
      worker = undefined;
      for (const resolve of pending.values()) resolve({ seq: 0, error: 'digester closed' });
      pending.clear();
      await stopping?.terminate();
    },
  };
}
