// A client process of the streams bench (bench/streams.ts): runs `streams` concurrent
// downloads or uploads of one file through a proxy, each on its own connection, each at
// `rate` bytes per second (0: as fast as the other side goes), and checks every byte:
// a download's SHA-256 against the file's, an upload's against the hash the tool answers.
// Prints one JSON line per event on stdout: {"ev":"open"} when a stream is under way,
// {"ev":"done",...} when it ended (ok or not), {"ev":"exit"} after the last one.
// Usage: node stream-client.js '<Job as JSON>'
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';

export interface Job {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly mode: 'download' | 'upload';
  readonly streams: number;
  /** The file: downloads compare against its hash, uploads send it. */
  readonly file: string;
  readonly sha256: string;
  readonly bytes: number;
  /** Bytes per second per stream on this side; 0: unlimited. */
  readonly rate: number;
  /** Streams opened per 100 ms, so that a thousand connections do not overflow an accept queue at once. */
  readonly openPer100ms: number;
  readonly firstId: number;
}

export interface StreamResult {
  readonly ev: 'done';
  readonly id: number;
  readonly ok: boolean;
  readonly status: number;
  readonly bytes: number;
  readonly ms: number;
  readonly error?: string;
}

const job = JSON.parse(process.argv[2] ?? '{}') as Job;
const emit = (o: object): void => { process.stdout.write(`${JSON.stringify(o)}\n`); };
const content = job.mode === 'upload' ? readFileSync(job.file) : undefined;
const CHUNK = 64 * 1024;

/** Pauses `pause()` until the stream is back on its schedule of `rate` bytes per second. */
function pacer(rate: number): (done: number, pause: () => void, resume: () => void) => void {
  const t0 = performance.now();
  return (done, pause, resume) => {
    if (rate <= 0) return;
    const ahead = done - (rate * (performance.now() - t0)) / 1000;
    if (ahead <= 0) return;
    pause();
    setTimeout(resume, (ahead / rate) * 1000);
  };
}

function download(id: number): Promise<StreamResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const fail = (status: number, bytes: number, error: string): void =>
      resolve({ ev: 'done', id, ok: false, status, bytes, ms: performance.now() - started, error });
    const req = request(job.url, { headers: job.headers, agent: false }, (res: IncomingMessage) => {
      emit({ ev: 'open', id });
      const hash = createHash('sha256');
      let got = 0;
      const pace = pacer(job.rate);
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        got += chunk.length;
        pace(got, () => res.pause(), () => res.resume());
      });
      res.on('end', () => {
        const sum = hash.digest('hex');
        if (res.statusCode !== 200) fail(res.statusCode ?? 0, got, `HTTP ${res.statusCode}`);
        else if (got !== job.bytes || sum !== job.sha256) fail(200, got, `${got} bytes, sha256 ${sum.slice(0, 12)}`);
        else resolve({ ev: 'done', id, ok: true, status: 200, bytes: got, ms: performance.now() - started });
      });
      res.on('error', (e) => fail(res.statusCode ?? 0, got, e.message));
    });
    req.on('error', (e) => fail(0, 0, e.message));
    req.end();
  });
}

function upload(id: number): Promise<StreamResult> {
  const started = performance.now();
  const body = content!;
  return new Promise((resolve) => {
    const fail = (status: number, error: string): void =>
      resolve({ ev: 'done', id, ok: false, status, bytes: 0, ms: performance.now() - started, error });
    const req: ClientRequest = request(job.url, {
      method: 'PUT', agent: false, headers: { ...job.headers, 'content-length': String(body.length), 'content-type': 'application/octet-stream' },
    }, (res: IncomingMessage) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (s: string) => { text += s; });
      res.on('end', () => {
        const [sum, n] = text.trim().split(' ');
        if (res.statusCode !== 200) fail(res.statusCode ?? 0, `HTTP ${res.statusCode}: ${text.slice(0, 80)}`);
        else if (sum !== job.sha256) fail(200, `the tool received ${n} bytes, sha256 ${sum?.slice(0, 12)}`);
        else resolve({ ev: 'done', id, ok: true, status: 200, bytes: Number(n), ms: performance.now() - started });
      });
      res.on('error', (e) => fail(res.statusCode ?? 0, e.message));
    });
    req.on('error', (e) => fail(0, e.message));
    req.once('socket', () => emit({ ev: 'open', id }));
    let sent = 0;
    let waiting = false;
    const pace = pacer(job.rate);
    // Writes until the socket pushes back or the schedule says wait; resumes on 'drain' or the timer.
    const pump = (): void => {
      waiting = false;
      while (sent < body.length) {
        const chunk = body.subarray(sent, Math.min(sent + CHUNK, body.length));
        sent += chunk.length;
        const more = req.write(chunk);
        let paused = false;
        pace(sent, () => { paused = true; waiting = true; }, pump);
        if (paused) return;
        if (!more) { waiting = true; req.once('drain', pump); return; }
      }
      if (!waiting) req.end();
    };
    pump();
  });
}

async function main(): Promise<void> {
  const run = job.mode === 'download' ? download : upload;
  const all: Array<Promise<void>> = [];
  for (let i = 0; i < job.streams; i++) {
    if (i > 0 && i % job.openPer100ms === 0) await new Promise((r) => setTimeout(r, 100));
    all.push(run(job.firstId + i).then(emit));
  }
  await Promise.all(all);
  emit({ ev: 'exit' });
}

main().catch((err: Error) => {
  process.stderr.write(`stream client: ${err.message}\n`);
  process.exit(1);
});
