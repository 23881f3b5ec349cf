// Real git through the proxy: clone, fetch and push of a repository with a pack over 50 MB,
// against `git http-backend` that requires Basic auth. The tool's credentials live only in
// the Secret; git authenticates to the proxy with the client token and never sees them.
// Host form (address without prefix) and path form (address with a `/git` prefix).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gitHttpHandler } from '../tools/git-http';
import { basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { run, type RunResult } from './support/run';

const CLIENT_TOKEN = 'good-token-123';
const BAD_TOKEN = 'bad-token-999';
const TOOL = { username: 'git-tool-user', password: 'git-tool-pw-7Qx2' };
const TOOL_AUTH = basic(TOOL.username, TOOL.password);
const CLIENT_BASIC = basic('any', CLIENT_TOKEN);

const MiB = 1024 * 1024;
const SEED_FILES = 11; // 11 × 5 MiB of random bytes: a pack of about 55 MiB
const SEED_FILE_SIZE = 5 * MiB;
const PUSH_SIZE = 12 * MiB;
const GIT_TIMEOUT_MS = 90_000;
const T = { timeout: 120_000 };

/** One request as the git server saw it. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
  readonly transferEncoding: string | undefined;
  readonly rawHeaders: string;
  bytes: number;
}

let root: string;
let home: string;
let gitEnv: NodeJS.ProcessEnv;
const seedHashes = new Map<string, string>();
let seedHead: string;
let server: Server;
let upstreamOrigin: string;
const seen: Seen[] = [];
let proxy: ProxyProcess;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** git with an isolated environment and no credential helper; resolves with the raw result. */
function gitRaw(cwd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run('git', ['-c', 'credential.helper=', ...args], { cwd, env: { ...gitEnv, ...env }, timeoutMs: GIT_TIMEOUT_MS });
}

/** git that must succeed; returns trimmed stdout. */
async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await gitRaw(cwd, args);
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} (in ${cwd}) failed with ${r.code ?? r.signal}:\n${r.stderr}`);
  return r.stdout.toString().trim();
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cproxy-git-'));
  home = join(root, 'home');
  mkdirSync(home);
  // Nothing from the user's or system config; no prompts, no askpass, no proxy variables.
  gitEnv = { PATH: process.env.PATH, HOME: home, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0', LANG: 'C', LC_ALL: 'C' };
  // Random data does not compress: store it (compression 0) and never try deltas on it
  // (bigFileThreshold), so generating and serving 55 MiB takes seconds, not minutes.
  writeFileSync(join(home, '.gitconfig'), [
    '[user]', '\tname = Test', '\temail = test@example.com',
    '[init]', '\tdefaultBranch = main',
    '[core]', '\tcompression = 0', '\tbigFileThreshold = 1m',
    '[advice]', '\tdetachedHead = false',
  ].join('\n') + '\n');

  const work = join(root, 'seed-work');
  mkdirSync(work);
  await git(work, 'init', '-q');
  for (let i = 0; i < SEED_FILES; i++) {
    const name = `blob-${String(i).padStart(2, '0')}.bin`;
    const data = randomBytes(SEED_FILE_SIZE);
    seedHashes.set(name, sha256(data));
    writeFileSync(join(work, name), data);
  }
  await git(work, 'add', '.');
  await git(work, 'commit', '-q', '-m', 'seed: 55 MiB of random data');
  seedHead = await git(work, 'rev-parse', 'HEAD');
  const seedBare = join(root, 'seed.git');
  await git(root, 'clone', '-q', '--bare', work, seedBare);
  // The git-http-backend CGI runs without HOME: the bare repositories carry what it needs.
  await git(seedBare, 'config', 'http.receivepack', 'true');
  await git(seedBare, 'config', 'core.bigFileThreshold', '1m');
  await git(seedBare, 'config', 'core.compression', '0');
  rmSync(work, { recursive: true, force: true });
  // Separate project roots: a path-form request that lost its `/git` prefix finds nothing.
  cpSync(seedBare, join(root, 'host-repos', 'big.git'), { recursive: true });
  cpSync(seedBare, join(root, 'path-repos', 'big.git'), { recursive: true });
  rmSync(seedBare, { recursive: true, force: true });

  const plain = gitHttpHandler({ projectRoot: join(root, 'host-repos'), credentials: TOOL });
  const prefixed = gitHttpHandler({ projectRoot: join(root, 'path-repos'), credentials: TOOL, prefix: '/git' });
  server = createServer((req, res) => {
    const s: Seen = {
      method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization,
      transferEncoding: req.headers['transfer-encoding'], rawHeaders: req.rawHeaders.join('\n'), bytes: 0,
    };
    seen.push(s);
    req.on('data', (c: Buffer) => { s.bytes += c.length; });
    if (s.url.startsWith('/git/')) prefixed(req, res);
    else plain(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  upstreamOrigin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  proxy = await startProxy({
    // `c-repo.team.localhost` resolves to loopback inside libcurl (git's HTTP client).
    domain: 'localhost',
    manifests: {
      'host.yaml': connectorManifests({ address: upstreamOrigin, name: 'repo', secretData: TOOL }),
      'path.yaml': connectorManifests({ address: `${upstreamOrigin}/git`, name: 'repo-path', resolver: 'path', secretData: TOOL }),
    },
  });
}, { timeout: 90_000 });

after(async () => {
  await proxy?.stop();
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
  if (root) rmSync(root, { recursive: true, force: true });
}, { timeout: 30_000 });

interface Mode {
  readonly form: 'host' | 'path';
  /** The repository URL a client uses, with `token` as the Basic password. */
  url(token: string): string;
  /** The bare repository on the git server. */
  bare(): string;
  /** Path prefix every upstream request for this mode must have. */
  readonly upstreamPrefix: string;
}

const MODES: Mode[] = [
  {
    form: 'host',
    url: (token) => `http://any:${token}@c-repo.team.localhost:${proxy.port}/big.git`,
    bare: () => join(root, 'host-repos', 'big.git'),
    upstreamPrefix: '/big.git/',
  },
  {
    form: 'path',
    url: (token) => `http://any:${token}@127.0.0.1:${proxy.port}/namespaces/team/connectors/repo-path/big.git`,
    bare: () => join(root, 'path-repos', 'big.git'),
    upstreamPrefix: '/git/big.git/',
  },
];

/** Asserts every upstream request from `from` on carried the tool's credentials, not the client's. */
function assertToolCredentials(from: number, mode: Mode): Seen[] {
  const mine = seen.slice(from);
  assert.ok(mine.length > 0, 'the git server saw the requests');
  for (const s of mine) {
    assert.equal(s.authorization, TOOL_AUTH, `${s.method} ${s.url} carried the Secret's Basic credentials`);
    assert.ok(s.url.startsWith(mode.upstreamPrefix), `${s.method} ${s.url} is under ${mode.upstreamPrefix}`);
    assert.ok(!s.rawHeaders.includes(CLIENT_TOKEN) && !s.rawHeaders.includes(CLIENT_BASIC.slice(6)), `${s.url}: no client token upstream`);
  }
  return mine;
}

for (const mode of MODES) {
  describe(`git through the proxy, ${mode.form} form`, () => {
    let clone: string;

    test('clone of a 55 MiB pack: same HEAD, same content', T, async () => {
      clone = join(root, `clone-${mode.form}`);
      const from = seen.length;
      await git(root, 'clone', '-q', mode.url(CLIENT_TOKEN), clone);

      assert.equal(await git(clone, 'rev-parse', 'HEAD'), seedHead);
      assert.equal(await git(mode.bare(), 'rev-parse', 'main'), seedHead);
      for (const [name, hash] of seedHashes) assert.equal(sha256(readFileSync(join(clone, name))), hash, `${name} content`);
      const sizePackKiB = Number(/^size-pack: (\d+)$/m.exec(await git(clone, 'count-objects', '-v'))?.[1]);
      assert.ok(sizePackKiB >= 50 * 1024, `received pack is ${sizePackKiB} KiB, want >= 50 MiB`);

      const mine = assertToolCredentials(from, mode);
      assert.ok(mine.some((s) => s.method === 'POST' && s.url === `${mode.upstreamPrefix}git-upload-pack`), 'the pack came from upload-pack upstream');
    });

    test('fetch picks up a commit pushed directly to the git server', T, async () => {
      // A commit made next to the server, not through the proxy.
      const direct = join(root, `direct-${mode.form}`);
      await git(root, 'clone', '-q', '--no-checkout', mode.bare(), direct);
      await git(direct, 'checkout', '-q', 'main');
      const note = `direct commit for ${mode.form} form ${randomBytes(8).toString('hex')}\n`;
      writeFileSync(join(direct, 'direct.txt'), note);
      await git(direct, 'add', 'direct.txt');
      await git(direct, 'commit', '-q', '-m', 'direct commit');
      await git(direct, 'push', '-q', 'origin', 'main');
      const newHead = await git(mode.bare(), 'rev-parse', 'main');
      assert.notEqual(newHead, seedHead);
      rmSync(direct, { recursive: true, force: true });

      const from = seen.length;
      const trace = join(root, `fetch-trace-${mode.form}.txt`);
      const r = await gitRaw(clone, ['fetch', '-q', 'origin'], { GIT_TRACE_CURL: trace, GIT_TRACE_CURL_NO_DATA: '1' });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await git(clone, 'rev-parse', 'origin/main'), newHead);
      await git(clone, 'merge', '-q', '--ff-only', 'origin/main');
      assert.equal(readFileSync(join(clone, 'direct.txt'), 'utf8'), note);
      assertToolCredentials(from, mode);

      // What git received: response headers and all; the tool's credentials are not there.
      const seenByGit = readFileSync(trace, 'utf8');
      assert.match(seenByGit, /<= Recv header: HTTP\/1\.1 200/, 'the trace records what git received');
      for (const secret of [TOOL.password, TOOL_AUTH.slice(6), TOOL.username]) {
        assert.ok(!seenByGit.includes(secret), `git saw ${secret}`);
      }
    });

    test('push of a new 12 MiB commit streams through and lands in the bare repository', T, async () => {
      const data = randomBytes(PUSH_SIZE);
      writeFileSync(join(clone, 'pushed.bin'), data);
      await git(clone, 'add', 'pushed.bin');
      await git(clone, 'commit', '-q', '-m', `push through the proxy (${mode.form} form)`);
      const head = await git(clone, 'rev-parse', 'HEAD');

      const from = seen.length;
      const trace = join(root, `push-trace-${mode.form}.txt`);
      const r = await gitRaw(clone, ['push', '-q', 'origin', 'main'], { GIT_TRACE_CURL: trace, GIT_TRACE_CURL_NO_DATA: '1' });
      assert.equal(r.code, 0, r.stderr);

      assert.equal(await git(mode.bare(), 'rev-parse', 'main'), head);
      const blob = await gitRaw(mode.bare(), ['cat-file', 'blob', 'main:pushed.bin']);
      assert.equal(blob.code, 0, blob.stderr);
      assert.equal(sha256(blob.stdout), sha256(data), 'the pushed file is intact on the server');
      await git(mode.bare(), 'fsck', '--connectivity-only', '--no-progress');

      const mine = assertToolCredentials(from, mode);
      const packPost = mine.find((s) => s.method === 'POST' && s.url === `${mode.upstreamPrefix}git-receive-pack` && s.bytes >= 10 * MiB);
      assert.ok(packPost, `a receive-pack POST of >= 10 MiB reached the server: ${JSON.stringify(mine.map((s) => [s.method, s.url, s.bytes]))}`);
      // git sent it chunked (a body larger than http.postBuffer), and the proxy streamed it on.
      assert.match(readFileSync(trace, 'utf8'), /=> Send header: Transfer-Encoding: chunked/i);
      assert.equal(packPost.transferEncoding, 'chunked');
    });

    test('clone with a wrong token fails with an authentication error and reaches nothing', T, async () => {
      const from = seen.length;
      const logMark = proxy.logs().length;
      const r = await gitRaw(root, ['clone', '-q', mode.url(BAD_TOKEN), join(root, `denied-${mode.form}`)]);
      assert.notEqual(r.code, 0, 'the clone must fail');
      assert.match(r.stderr, /fatal: Authentication failed/, r.stderr);
      assert.equal(seen.length, from, 'no request reached the git server');
      await proxy.waitForLog(/"status":401/, 5000, logMark);
    });
  });
}

test('no client token or tool credential in the proxy logs; the server only ever saw the tool credentials', T, async () => {
  const logs = proxy.logs();
  assert.match(logs, /"msg":"request".*"connector":"team\/repo"|"connector":"team\/repo".*"msg":"request"/, 'the access log is on');
  assert.match(logs, /"connector":"team\/repo-path"/);
  for (const secret of [CLIENT_TOKEN, BAD_TOKEN, CLIENT_BASIC.slice(6), TOOL.password, TOOL_AUTH.slice(6)]) {
    assert.ok(!logs.includes(secret), `proxy log output contains ${secret}`);
  }
  assert.ok(seen.length > 0);
  for (const s of seen) assert.equal(s.authorization, TOOL_AUTH, `${s.method} ${s.url}`);
});
