// The Dockerfile, without a container runtime: hadolint (scripts/install-hadolint.sh), its
// agreement with deploy/ and src/config.ts, and its ENTRYPOINT and CMD run for real on the
// output of its own stages, rebuilt here: the build stage's COPY and RUN lines run in an
// empty folder holding only what it copies (so a file it forgets to copy fails the build),
// the opa stage's output is scripts/install-opa.sh's build, and the runtime stage's COPY
// lines lay them out under a folder standing for the image's root. The one substitution:
// the image's /nodejs/bin/node is this Node 20. The proxy then starts in Kubernetes mode
// against a real API server and compiles a Rego policy with the OPA at the image's path.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { OPA_VERSION } from '../src/config';
import { REPO_ROOT } from './support/proxy';
import { startKube, type KubeCluster } from './support/kube';
import { run } from './support/run';

const HADOLINT = join(REPO_ROOT, '.cache', 'hadolint');
const DOCKERFILE = join(REPO_ROOT, 'Dockerfile');

interface Instruction { readonly op: string; readonly args: string; readonly line: number }
interface Stage { readonly from: string; readonly name: string | undefined; readonly instructions: Instruction[] }

/** Dockerfile instructions by stage: comments dropped, continuation lines joined. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let l = lines[i]!.trim();
    if (l === '' || l.startsWith('#')) continue;
    while (l.endsWith('\\') && i + 1 < lines.length) {
      l = `${l.slice(0, -1).trimEnd()} ${lines[++i]!.trim()}`.trim();
    }
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!, line: start };
    if (ins.op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ from: f[1]!, name: f[2], instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return stages;
}

/** `KEY=value KEY2=value` (values may be double-quoted), as in ENV and ARG. */
function keyValues(args: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of args.matchAll(/(\w+)=("([^"]*)"|\S*)/g)) out.set(m[1]!, m[3] ?? m[2]!);
  return out;
}

/** COPY [--from=stage] src... dst */
function copyOf(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const w = words.shift()!;
    if (w.startsWith('--from=')) from = w.slice('--from='.length);
  }
  const dest = words.pop()!;
  return { from, sources: words, dest };
}

const all = (s: Stage, op: string): Instruction[] => s.instructions.filter((i) => i.op === op);
const one = (s: Stage, op: string): Instruction => {
  const found = all(s, op);
  assert.equal(found.length, 1, `one ${op} in stage ${s.name ?? s.from}`);
  return found[0]!;
};
const workdir = (s: Stage): string => all(s, 'WORKDIR').at(-1)?.args ?? '/';
const envOf = (s: Stage): Map<string, string> => new Map(all(s, 'ENV').flatMap((i) => [...keyValues(i.args)]));

describe('Dockerfile', () => {
  const text = readFileSync(DOCKERFILE, 'utf8');
  const stages = parseDockerfile(text);
  const runtime = stages.at(-1)!;
  const byName = new Map(stages.map((s) => [s.name, s]));

  test('hadolint finds nothing (and does flag a bad Dockerfile)', async () => {
    assert.ok(existsSync(HADOLINT), `${HADOLINT} is missing: run bash scripts/install-hadolint.sh (scripts/setup.sh --test does)`);
    const r = await run(HADOLINT, ['--no-color', DOCKERFILE], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `hadolint:\n${r.stdout.toString()}${r.stderr}`);
    assert.equal(r.stdout.toString().trim(), '');
    // Control: the linter is really looking.
    const bad = await run(HADOLINT, ['--no-color', '-'], { input: 'FROM node:latest\nRUN cd /app && npm install left-pad\n', timeoutMs: 60_000 });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout.toString(), /DL3007/); // latest tag
    assert.match(bad.stdout.toString(), /DL3003/); // cd instead of WORKDIR
  });

  test('multi-stage: OPA at the pinned version, TypeScript built, small non-root Node 20 runtime matching deploy/', () => {
    assert.deepEqual(stages.map((s) => s.name), ['opa', 'build', 'runtime']);
    const opa = byName.get('opa')!;
    assert.equal(keyValues(one(opa, 'ARG').args).get('OPA_VERSION'), OPA_VERSION, 'the OPA pin of src/config.ts');
    assert.match(one(opa, 'RUN').args, /install-opa\.sh/, 'OPA is built by the same script as for the tests');
    assert.match(byName.get('build')!.from, /^node:20[-.]/);
    assert.match(runtime.from, /^gcr\.io\/distroless\/nodejs20-debian12:nonroot$/, 'distroless Node 20, no shell or package manager');

    // Non-root, the same uid the Deployment runs as.
    const user = one(runtime, 'USER').args;
    const [uid, gid] = user.split(':').map(Number);
    assert.ok(uid! > 0 && gid! > 0, `USER ${user} is numeric and not root`);
    const deployment = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy', 'deployment.yaml'), 'utf8'))[0]!.toJS() as {
      spec: { template: { spec: { securityContext: { runAsUser: number; runAsGroup: number }; containers: Array<{ env: Array<{ name: string; value: string }>; ports: Array<{ containerPort: number }> }> } } };
    };
    const pod = deployment.spec.template.spec;
    assert.equal(pod.securityContext.runAsUser, uid);
    assert.equal(pod.securityContext.runAsGroup, gid);

    // The OPA binary lands where the image and the Deployment tell the proxy to find it.
    const env = envOf(runtime);
    const deployEnv = new Map(pod.containers[0]!.env.map((e) => [e.name, e.value]));
    const opaCopy = all(runtime, 'COPY').map((i) => copyOf(i.args)).find((c) => c.from === 'opa');
    assert.equal(opaCopy?.dest, env.get('PROXY_OPA'));
    assert.equal(deployEnv.get('PROXY_OPA'), env.get('PROXY_OPA'));
    assert.equal(deployEnv.get('PROXY_POLICY_CACHE_DIR'), env.get('PROXY_POLICY_CACHE_DIR'));
    const exposed = one(runtime, 'EXPOSE').args.split(/\s+/).map(Number);
    for (const p of pod.containers[0]!.ports) assert.ok(exposed.includes(p.containerPort), `port ${p.containerPort} is exposed`);

    // What the build context must hold is there and not excluded by .dockerignore.
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const s of stages) {
      for (const c of all(s, 'COPY').map((i) => copyOf(i.args)).filter((c) => c.from === undefined)) {
        for (const src of c.sources) {
          assert.ok(existsSync(join(REPO_ROOT, src)), `COPY ${src}: exists in the repository`);
          assert.ok(!ignored.some((g) => src === g || src.startsWith(`${g}/`)), `COPY ${src}: not in .dockerignore`);
        }
      }
    }
  });

  test('every package the built proxy loads is a production dependency (the image prunes the others)', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules);
    const needed = new Set<string>();
    const walk = (dir: string): void => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else if (f.endsWith('.js')) {
          for (const m of readFileSync(p, 'utf8').matchAll(/require\("([^"]+)"\)/g)) {
            const id = m[1]!;
            if (id.startsWith('.') || id.startsWith('node:') || builtins.has(id)) continue;
            needed.add(id.startsWith('@') ? id.split('/').slice(0, 2).join('/') : id.split('/')[0]!);
          }
        }
      }
    };
    walk(join(REPO_ROOT, 'dist', 'src'));
    assert.ok(needed.size > 0);
    for (const id of needed) assert.ok(id in pkg.dependencies, `${id} is loaded by dist/src but is not in package.json dependencies`);
  });

  describe('ENTRYPOINT and CMD on the output of the stages', () => {
    let dir: string;
    let root: string;
    let kube: KubeCluster;
    let proxy: ChildProcess | undefined;
    let out = '';

    /** A path inside the image, under the folder that stands for its root. */
    const inImage = (p: string): string => join(root, p);

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'cproxy-image-'));
      root = join(dir, 'root');
      kube = await startKube();
    });
    after(async () => {
      if (proxy && proxy.exitCode === null) {
        proxy.kill('SIGTERM');
        await new Promise((r) => proxy!.once('exit', r));
      }
      await kube?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('the build stage builds from exactly what it copies', async () => {
      const build = byName.get('build')!;
      const stageDir = join(dir, 'build');
      mkdirSync(stageDir);
      const wd = workdir(build);
      for (const ins of build.instructions) {
        if (ins.op === 'COPY') {
          const c = copyOf(ins.args);
          assert.equal(c.from, undefined);
          const dest = join(stageDir, posix.relative(wd, posix.resolve(wd, c.dest)));
          for (const src of c.sources) {
            const target = c.dest.endsWith('/') ? join(dest, posix.basename(src)) : dest;
            mkdirSync(dirname(target), { recursive: true });
            cpSync(join(REPO_ROOT, src), target, { recursive: true });
          }
        } else if (ins.op === 'RUN') {
          // npm may use its local cache; the commands are the Dockerfile's own.
          const r = await run('sh', ['-ec', ins.args], { cwd: stageDir, timeoutMs: 300_000, env: { ...process.env, npm_config_prefer_offline: 'true' } });
          assert.equal(r.code, 0, `Dockerfile line ${ins.line}: RUN ${ins.args}\n${r.stdout.toString()}${r.stderr}`);
        }
      }
      assert.ok(existsSync(join(stageDir, 'dist', 'src', 'main.js')));
      assert.ok(!existsSync(join(stageDir, 'node_modules', 'typescript')), 'development dependencies are pruned');

      // The runtime stage's layout, from the stages' outputs.
      const opaBuilt = (await run('bash', [join(REPO_ROOT, 'scripts', 'install-opa.sh')], { timeoutMs: 600_000 })).stdout.toString().trim();
      assert.ok(existsSync(opaBuilt), 'scripts/install-opa.sh built OPA');
      const stageRoots = new Map<string, { dir: string; wd: string }>([['build', { dir: stageDir, wd }]]);
      const rwd = workdir(runtime);
      for (const c of all(runtime, 'COPY').map((i) => copyOf(i.args))) {
        assert.ok(c.from !== undefined, 'the runtime stage copies only from the other stages');
        const dest = inImage(posix.resolve(rwd, c.dest));
        mkdirSync(dirname(dest), { recursive: true });
        for (const src of c.sources) {
          if (c.from === 'opa') { symlinkSync(opaBuilt, dest); continue; }
          const s = stageRoots.get(c.from)!;
          cpSync(join(s.dir, posix.relative(s.wd, src)), dest, { recursive: true });
        }
      }
    });

    /** The image's ENTRYPOINT + `args`, environment (paths into the image remapped) and working directory. */
    const imageCommand = (args: readonly string[]): { cmd: string; argv: string[]; env: NodeJS.ProcessEnv; cwd: string } => {
      const entry = JSON.parse(one(runtime, 'ENTRYPOINT').args) as string[];
      assert.equal(entry[0], '/nodejs/bin/node', "distroless Node's path");
      // The heap-sizing launcher (test/entrypoint.test.ts runs it under container limits).
      assert.equal(entry[1], '/app/dist/src/entrypoint.js');
      assert.equal(process.versions.node.split('.')[0], '20', 'this Node stands in for the image\'s Node 20');
      const env: NodeJS.ProcessEnv = {};
      for (const [k, v] of envOf(runtime)) env[k] = v.startsWith('/') ? inImage(v) : v;
      return {
        cmd: process.execPath,
        argv: [...entry.slice(1).map((a) => (a.startsWith('/') ? inImage(a) : a)), ...args],
        env: { PATH: process.env.PATH, HOME: join(dir, 'home'), ...env },
        cwd: inImage(workdir(runtime)),
      };
    };

    test('ENTRYPOINT --help: the CLI with every flag and its environment variable', async () => {
      const c = imageCommand(['--help']);
      const r = await run(c.cmd, c.argv, { cwd: c.cwd, env: c.env, timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      const help = r.stdout.toString();
      for (const f of ['--source', '--tls-listen', '--tls-cert', '--tls-key', '--opa', '--policy-cache-dir', '--shutdown-grace-ms']) assert.match(help, new RegExp(`${f}\\b`));
      assert.match(help, /PROXY_TLS_LISTEN/);
    });

    test('ENTRYPOINT + CMD (Kubernetes mode) becomes ready on a real API server and compiles Rego with the image\'s OPA into its policy cache', async () => {
      const cmdArgs = JSON.parse(one(runtime, 'CMD').args) as string[];
      assert.deepEqual(cmdArgs, ['--source', 'kubernetes']);
      for (const f of ['connectorclasses.yaml', 'connectors.yaml']) await kube.applyYaml(readFileSync(join(REPO_ROOT, 'deploy', 'crds', f), 'utf8'));
      await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
      await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
      await kube.kubectl(['create', 'namespace', 'team']);
      await kube.applyYaml(REGO_CLASS(readFileSync(join(REPO_ROOT, 'rego', 'seed', 'bearer-token.rego'), 'utf8')));

      const c = imageCommand(cmdArgs);
      // As in the Deployment: listeners by environment, the API server by kubeconfig (no in-cluster files here).
      const env = { ...c.env, PROXY_KUBECONFIG: kube.kubeconfig, PROXY_LISTEN: '127.0.0.1:0', PROXY_OPS_LISTEN: '127.0.0.1:0', PROXY_NO_PROBES: 'true', PROXY_NO_WRITE_STATUS: 'true' };
      proxy = spawn(c.cmd, c.argv, { cwd: c.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      proxy.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
      proxy.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
      const waitFor = async <T>(what: string, f: () => Promise<T | undefined>): Promise<T> => {
        for (let i = 0; i < 600; i++) {
          if (proxy!.exitCode !== null) assert.fail(`the proxy exited (${proxy!.exitCode}) waiting for ${what}:\n${out}`);
          const v = await f().catch(() => undefined);
          if (v !== undefined) return v;
          await new Promise((r) => setTimeout(r, 100));
        }
        return assert.fail(`timed out waiting for ${what}:\n${out}`);
      };
      const opsPort = await waitFor('the listening line', async () => {
        const m = /"ops":"[^"]*:(\d+)"/.exec(out);
        return m ? Number(m[1]) : undefined;
      });
      await waitFor('/readyz 200', async () => ((await fetch(`http://127.0.0.1:${opsPort}/readyz`)).status === 200 ? true : undefined));
      await waitFor('a policy compilation', async () => {
        const t = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
        return /connectors_proxy_policy_compilations_total [1-9]/.test(t) ? t : undefined;
      });
      const cacheDir = envOf(runtime).get('PROXY_POLICY_CACHE_DIR')!;
      const cached = await waitFor('the compiled policy in the image\'s cache folder', async () => {
        const files = existsSync(inImage(cacheDir)) ? readdirSync(inImage(cacheDir)).filter((f) => f.endsWith('.wasm')) : [];
        return files.length > 0 ? files : undefined;
      });
      assert.equal(cached.length, 1);
      assert.doesNotMatch(out, /could not|failed|"level":50/, out);

      proxy.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => proxy!.once('exit', (c2) => r(c2)));
      assert.equal(code, 0, out);
    });
  });
});

/** A class whose auth type builds its header with a Rego generator (compiled by OPA on load). */
const REGO_CLASS = (rego: string): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: rego-bearer
spec:
  proxy: {}
  address:
    type: string
  auth:
    types:
      - name: token
        secretType: Opaque
        params:
          - name: token
            type: string
        generator:
          rego: |
${rego.split('\n').map((l) => (l ? `            ${l}` : l)).join('\n')}
`;
