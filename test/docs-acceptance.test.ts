// Acceptance: every ConnectorClass the docs describe, tried as a new user would. For each class
// (the docs' own YAML where they publish it: npm, Nexus, SonarQube and the examples of
// connectorclass.mdx and connectors_csi.mdx; ours in examples/ where they only describe it),
// with a Connector taken from the docs page (address, Secret and repository pointed at a real
// server of that protocol on this machine):
//   applies  — class and Connector on the real API server with --validate=strict;
//   Ready    — Ready=True in the proxy's status after its real probes against that server;
//   renders  — each configuration through GET /configurations/files (the CSI driver's mount);
//   accepted — the real client reads the rendered file (git config -l, npm config list,
//              pip config list, skopeo login --get-login, mvn help:effective-settings,
//              kubectl config view).
// The test prints the README's table (class × applies, Ready, configuration → client).
// Also: the CLI as an init container (examples/init-container/) passes a server-side dry run in
// a namespace enforcing the restricted Pod Security level.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { gitHttpHandler } from '../tools/git-http';
import { request } from './support/http';
import { KUBE_BIN_DIR, startKube, type KubeCluster } from './support/kube';
import { REPO_ROOT, startProxy, type ProxyProcess } from './support/proxy';
import { run } from './support/run';
import { docsExamples, type DocsExample } from './support/docs-fixtures';
import { startRegistryHarness, type RegistryHarness } from './support/registry';
import { startPypiserver, startVerdaccio, type PackageRegistry } from './support/package-registries';

const NS = 'team';
const TOKEN = 'good-token-123';
const GIT = { username: 'git-user', password: 'git-pw-Ac83' };
const MAVEN = { username: 'maven-user', password: 'maven-pw-Mv42' };
const REGISTRY = { username: 'registry-user', password: 'registry-pw-Rg51' };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const docs = (...objs: Array<object | string>): string => objs.map((o) => (typeof o === 'string' ? o : stringify(o))).join('\n---\n');
const example = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');

type Obj = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } };

/** The class documents of an examples/ file (other kinds dropped). */
function classFrom(path: string, name?: string): Obj {
  const all = parseAllDocuments(example(path)).map((d) => d.toJS() as Obj);
  const cls = all.find((o) => o.kind === 'ConnectorClass' && (name === undefined || o.metadata.name === name));
  assert.ok(cls, `${path}: no ConnectorClass ${name ?? ''}`);
  return cls;
}

function docsObject(source: string, kind: string, name?: string): DocsExample {
  const e = docsExamples().find((x) => x.source.startsWith(source) && x.object.kind === kind && (name === undefined || x.object.metadata.name === name));
  assert.ok(e, `no ${kind} ${name ?? ''} at ${source}`);
  return e;
}

interface Client { readonly name: string; readonly run: (file: string, dir: string) => Promise<string> }
interface ConfigCheck { readonly configuration: string; readonly file: string; readonly client?: Client; readonly noClient?: string; readonly params?: Record<string, string> }
interface Row {
  readonly label: string;
  readonly source: string;
  readonly cls: () => Obj;
  /** The docs Connector (source line) and what is changed to point it at this machine's server. */
  readonly connector: () => { source: string; object: Obj; secret?: Obj };
  /** Why Ready is not checked here (no such server on this machine). */
  readonly noServer?: string;
  readonly configs: readonly ConfigCheck[];
}

// ---- real servers ----------------------------------------------------------------------

let root: string;
let gitServer: Server;
let gitOrigin: string;
let mavenServer: Server;
let mavenOrigin: string;
let registry: RegistryHarness;
let verdaccio: PackageRegistry;
let pypi: PackageRegistry;
let kube: KubeCluster;
let k8sToken: string;
let proxy: ProxyProcess;
let port: number;

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; origin: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function freePort(): Promise<number> {
  const { server } = await listen(() => {});
  const p = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return p;
}

/** A static Maven layout (a POM and its checksum) behind Basic auth; `/` answers like Central's index. */
function mavenHandler(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/' || url.pathname === '/maven2/') { res.writeHead(200, { 'content-type': 'text/html' }).end('<html><a href="com/">com/</a></html>\n'); return; }
  const ok = req.headers.authorization === `Basic ${Buffer.from(`${MAVEN.username}:${MAVEN.password}`).toString('base64')}`;
  if (!ok) { res.writeHead(401, { 'www-authenticate': 'Basic realm="maven"' }).end(); return; }
  const pom = '<project><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId><artifactId>demo</artifactId><version>1.0</version></project>\n';
  if (url.pathname === '/maven2/com/example/demo/1.0/demo-1.0.pom') { res.writeHead(200, { 'content-type': 'text/xml' }).end(pom); return; }
  res.writeHead(404).end();
}

// ---- clients ---------------------------------------------------------------------------

const clientEnv = (dir: string): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: dir, LANG: 'C', LC_ALL: 'C' });

async function must(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  const r = await run(cmd, args, { env, cwd, timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} → ${r.code}: ${r.stderr.trim().slice(-800)}\n${r.stdout.toString().split('\n').filter((l) => /ERROR/.test(l)).slice(0, 5).join('\n')}`);
  return r.stdout.toString();
}

const GIT_CLIENT: Client = {
  name: 'git config -l',
  run: async (file, dir) => {
    const out = await must('git', ['config', '-l', '--file', file], clientEnv(dir), dir);
    assert.match(out, /insteadof=|sslverify=|extraheader=|^$/m);
    return out;
  },
};
const NPM_CLIENT: Client = {
  name: 'npm config list',
  run: async (file, dir) => {
    const out = await must('npm', ['config', 'list', '--userconfig', file], { ...clientEnv(dir), npm_config_cache: join(dir, 'npm-cache') }, dir);
    assert.match(out, /; "user" config from /);
    assert.match(out, /registry = /);
    return out;
  },
};
const PIP_CLIENT: Client = {
  name: 'pip config list',
  run: async (file, dir) => {
    const out = await must('pip', ['config', 'list'], { ...clientEnv(dir), PIP_CONFIG_FILE: file }, dir);
    assert.match(out, /^global\.index-url=/m);
    return out;
  },
};
const SKOPEO_CLIENT = (host: () => string, user: string): Client => ({
  name: 'skopeo login --get-login',
  run: async (file, dir) => {
    const out = await must('skopeo', ['login', '--get-login', '--authfile', file, host()], clientEnv(dir), dir);
    // The Connector's name: the class renders it as the config.json user.
    assert.match(out.trim(), new RegExp(`^${user}(-r\\d+)?$`));
    return out;
  },
});
const KUBECTL_CLIENT: Client = {
  name: 'kubectl config view',
  run: async (file, dir) => {
    const out = await must(join(KUBE_BIN_DIR, 'kubectl'), ['--kubeconfig', file, 'config', 'view', '--minify', '-o', 'jsonpath={.clusters[0].cluster.proxy-url}'], clientEnv(dir), dir);
    assert.match(out, new RegExp(`^http://${NS}%2Fk8s-connector(-r\\d+)?:[^@]+@127\\.0\\.0\\.1:${port}$`));
    return out;
  },
};
/** mvn reads settings.xml offline; maven-help-plugin comes from Maven Central once (cached). */
const MAVEN_REPO = join(process.env.CONNECTORS_PROXY_CACHE ?? join(homedir(), '.cache', 'connectors-proxy'), 'm2');
let mavenHelp: string | undefined;
const MAVEN_CLIENT: Client = {
  name: 'mvn help:effective-settings',
  run: async (file, dir) => {
    if (mavenHelp !== undefined) throw new Error(`skipped: ${mavenHelp}`);
    // -llr: the plugin was downloaded from Central, a settings.xml mirror of * has another id.
    const out = await must('mvn', ['-B', '-o', '-llr', '-s', file, `-Dmaven.repo.local=${MAVEN_REPO}`, 'org.apache.maven.plugins:maven-help-plugin:3.5.1:effective-settings'], clientEnv(dir), dir);
    const proxyBlock = /<proxies>([\s\S]*?)<\/proxies>/.exec(out)?.[1] ?? '';
    assert.match(proxyBlock, /<host>127\.0\.0\.1<\/host>/, out);
    assert.match(proxyBlock, /<port>\d+<\/port>/, out);
    return out;
  },
};

// ---- the classes -----------------------------------------------------------------------

const gitSecret = (name: string): Obj => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: NS }, type: 'kubernetes.io/basic-auth', stringData: GIT } as unknown as Obj);

/** The docs Connector at `source`, pointed at `address`, in NS, with our Secret (same type as the docs'). */
function pointed(source: string, name: string | undefined, address: string, o: { secret?: Obj; repository?: boolean; ext?: Array<{ name: string; value: string }> } = {}): { source: string; object: Obj; secret?: Obj } {
  const e = docsObject(source, 'Connector', name);
  const c = structuredClone(e.object) as unknown as Obj & { spec: { address: string; auth?: { name?: string; secretRef?: { name: string }; params?: Array<{ name: string; value: string }> }; addressExtensions?: unknown } };
  c.metadata = { ...c.metadata, namespace: NS };
  c.spec.address = address;
  if (o.ext) c.spec.addressExtensions = o.ext;
  if (o.secret && c.spec.auth) c.spec.auth.secretRef = { name: o.secret.metadata.name };
  if (o.repository && c.spec.auth) c.spec.auth.params = [{ name: 'repository', value: 'repo.git' }];
  return { source: e.source, object: c, secret: o.secret };
}

const ROWS: readonly Row[] = [
  {
    label: 'git', source: 'ours: examples/configurations/git.yaml (connectors-git has no class YAML)',
    cls: () => classFrom('examples/configurations/git.yaml'),
    connector: () => pointed('docs/en/connectors-git/concepts/git_connectorclass.mdx:143', 'github-demo', gitOrigin, { secret: gitSecret('github-secret'), repository: true }),
    configs: [{ configuration: 'gitconfig', file: '.gitconfig', client: GIT_CLIENT }],
  },
  {
    label: 'github', source: 'ours: examples/classes/github.yaml (github_connectorclass.mdx has no class YAML)',
    cls: () => classFrom('examples/classes/github.yaml'),
    connector: () => pointed('docs/en/connectors-github/concepts/github_connectorclass.mdx:13', 'github-demo', gitOrigin, {
      ext: [{ name: 'api', value: `${mavenOrigin}/api` }],
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'github-secret', namespace: NS }, type: 'Opaque', stringData: { token: 'ghp_acceptance' } } as unknown as Obj,
    }),
    configs: [
      { configuration: 'gitconfig', file: '.gitconfig', client: GIT_CLIENT },
      { configuration: 'githubconfig', file: 'hosts.yml', noClient: 'gh is not installed here' },
    ],
  },
  {
    label: 'gitlab', source: 'ours: examples/classes/gitlab.yaml (docs show parts: gitlab_connectorclass.mdx, design/connector-gitlab)',
    cls: () => classFrom('examples/classes/gitlab.yaml'),
    connector: () => pointed('docs/en/connectors-gitlab/concepts/gitlab_connectorclass.mdx:36', 'gitlab-demo', gitOrigin, {
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'gitlab-secret', namespace: NS }, type: 'connectors.cpaas.io/gitlab-pat-auth', stringData: { token: 'glpat-acceptance' } } as unknown as Obj,
    }),
    noServer: 'no GitLab here (its auth probe asks /api/v4/user)',
    configs: [
      { configuration: 'gitconfig', file: '.gitconfig', client: GIT_CLIENT },
      { configuration: 'gitlabconfig', file: 'config.yml', noClient: 'glab is not installed here' },
    ],
  },
  {
    label: 'harbor', source: 'ours: examples/classes/harbor.yaml (harbor_connectorclass.mdx has no class YAML)',
    cls: () => classFrom('examples/classes/harbor.yaml'),
    connector: () => pointed('docs/en/connectors-harbor/concepts/harbor_connectorclass.mdx:31', 'harbor-connector', registry.registry.url),
    configs: [
      { configuration: 'registry-config', file: 'config.json', client: SKOPEO_CLIENT(() => `127.0.0.1:${port}`, 'harbor-connector') },
      { configuration: 'buildkitd', file: 'buildkitd.toml', noClient: 'buildkitd is not installed here' },
    ],
  },
  {
    label: 'oci', source: 'ours: examples/configurations/oci.yaml (oci_connectorclass.mdx has no class YAML)',
    cls: () => classFrom('examples/configurations/oci.yaml'),
    connector: () => pointed('docs/en/connectors-oci/concepts/oci_connectorclass.mdx:79', 'oci-registry-demo', registry.registry.url, {
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'oci-secret', namespace: NS }, type: 'cpaas.io/distribution-registry-token', stringData: REGISTRY } as unknown as Obj,
    }),
    configs: [
      { configuration: 'docker-config', file: 'config.json', client: SKOPEO_CLIENT(() => `127.0.0.1:${port}`, 'oci-registry-demo') },
      { configuration: 'buildkitd', file: 'buildkitd.toml', noClient: 'buildkitd is not installed here' },
    ],
  },
  {
    label: 'npm', source: 'docs: design/connector-npm/tech-desgin.md (verbatim)',
    cls: () => docsObject('docs/en/design/connector-npm', 'ConnectorClass', 'npm').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors-npm/concepts/npm_connectorclass.mdx:130', 'npm-connector', `${verdaccio.url}/`, {
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'npm-secret', namespace: NS }, type: 'kubernetes.io/basic-auth', stringData: { username: verdaccio.username, password: verdaccio.password } } as unknown as Obj,
    }),
    configs: [
      { configuration: 'npmrc', file: '.npmrc', client: NPM_CLIENT },
      { configuration: 'yarnrc', file: '.yarnrc.yml', noClient: 'yarn 2+ is not installed here' },
    ],
  },
  {
    label: 'pypi', source: 'ours: examples/classes/pypi.yaml (pypi_connectorclass.mdx has no class YAML)',
    cls: () => classFrom('examples/classes/pypi.yaml'),
    connector: () => pointed('docs/en/connectors-pypi/concepts/pypi_connectorclass.mdx:116', 'pypi-connector', pypi.url, {
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pypi-secret', namespace: NS }, type: 'kubernetes.io/basic-auth', stringData: { username: pypi.username, password: pypi.password } } as unknown as Obj,
    }),
    configs: [
      { configuration: 'pipconf', file: 'pip.conf', client: PIP_CLIENT },
      { configuration: 'pypirc', file: '.pypirc', noClient: 'twine is not installed here' },
    ],
  },
  {
    label: 'maven', source: 'ours: examples/classes/maven.yaml (maven_connectorclass.mdx has no class YAML)',
    cls: () => classFrom('examples/classes/maven.yaml'),
    connector: () => pointed('docs/en/connectors-maven/concepts/maven_connectorclass.mdx:135', 'maven-connector', `${mavenOrigin}/maven2`, {
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'maven-secret', namespace: NS }, type: 'kubernetes.io/basic-auth', stringData: MAVEN } as unknown as Obj,
    }),
    configs: [{ configuration: 'settings', file: 'settings.xml', client: MAVEN_CLIENT, params: { mirror: 'true' } }],
  },
  {
    label: 'nexus', source: 'docs: design/connector-nexus/tech-design.md (verbatim)',
    cls: () => docsObject('docs/en/design/connector-nexus', 'ConnectorClass', 'nexus').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors-nexus/concepts/nexus_connectorclass.mdx:51', 'nexus-connector', mavenOrigin),
    noServer: 'no Nexus here (its probes ask /service/rest/v1/status)',
    configs: [
      { configuration: 'settings', file: 'settings.xml', client: MAVEN_CLIENT, params: { mirrorRepository: 'maven-public' } },
      { configuration: 'npmrc', file: '.npmrc', client: NPM_CLIENT, params: { registry: 'npm-proxy' } },
      { configuration: 'pipconf', file: 'pip.conf', client: PIP_CLIENT, params: { repository: 'pypi-proxy' } },
    ],
  },
  {
    label: 'sonarqube', source: 'docs: design/connector-sonar/tech-desgin.md (verbatim)',
    cls: () => docsObject('docs/en/design/connector-sonar', 'ConnectorClass', 'sonarqube').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors-sonarqube/concepts/sonarqube_connectorclass.mdx:34', 'sonarqube-connector', mavenOrigin, {
      secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sonarqube-token-secret', namespace: NS }, type: 'connectors.cpaas.io/bearer-token', stringData: { token: 'squ_acceptance' } } as unknown as Obj,
    }),
    noServer: 'no SonarQube here (its response.cel probes run against a SonarQube-shaped server in test/probes.test.ts)',
    configs: [{ configuration: 'sonar-scanner', file: 'sonar-project.properties', noClient: 'sonar-scanner is not installed here' }],
  },
  {
    label: 'k8s', source: 'ours: examples/classes/k8s.yaml (k8s_connectorclass.mdx has no class YAML)',
    cls: () => classFrom('examples/classes/k8s.yaml'),
    connector: () => {
      const c = pointed('docs/en/connectors-k8s/concepts/k8s_connectorclass.mdx:31', 'k8s-connector', kube.url, {
        secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'k8s-secret', namespace: NS }, type: 'connectors.cpaas.io/bearer-token', stringData: { token: k8sToken } } as unknown as Obj,
      });
      (c.object.spec as Record<string, unknown>).caCertSecretRef = { name: 'k8s-ca' };
      return c;
    },
    configs: [{ configuration: 'kubeconfig', file: 'kubeconfig', client: KUBECTL_CLIENT }],
  },
  {
    label: 'connectorclass.mdx: complete Git example', source: 'docs: connectors/concepts/connectorclass.mdx:1032 (verbatim)',
    cls: () => docsObject('docs/en/connectors/concepts/connectorclass.mdx:1032', 'ConnectorClass').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors-git/concepts/git_connectorclass.mdx:143', 'github-demo', gitOrigin, { secret: gitSecret('github-secret'), repository: true }),
    configs: [],
  },
  {
    label: 'connectorclass.mdx: gitconfig example', source: 'docs: connectors/concepts/connectorclass.mdx:723 (apiVersion added)',
    cls: () => docsObject('docs/en/connectors/concepts/connectorclass.mdx:723', 'ConnectorClass').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors/concepts/connector.mdx:43', 'git-github', gitOrigin),
    configs: [{ configuration: 'gitconfig', file: '.gitconfig', client: GIT_CLIENT }],
  },
  {
    label: 'connectors_csi.mdx: Git sslVerify example', source: 'docs: connectors/concepts/connectors_csi.mdx:458 (apiVersion added)',
    cls: () => docsObject('docs/en/connectors/concepts/connectors_csi.mdx:458', 'ConnectorClass').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors/concepts/connector.mdx:127', 'git-gitlab', gitOrigin),
    configs: [{ configuration: 'config', file: '.gitconfig', client: GIT_CLIENT }],
  },
  {
    label: 'connectors_csi.mdx: proxy and token example', source: 'docs: connectors/concepts/connectors_csi.mdx:483 (apiVersion added)',
    cls: () => docsObject('docs/en/connectors/concepts/connectors_csi.mdx:483', 'ConnectorClass').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors/concepts/connector.mdx:58', 'git-gitlab', gitOrigin),
    configs: [{ configuration: 'config', file: '.gitconfig', client: GIT_CLIENT }],
  },
  {
    label: 'connectors_csi.mdx: multi-connector example', source: 'docs: connectors/concepts/connectors_csi.mdx:321',
    cls: () => docsObject('docs/en/connectors/concepts/connectors_csi.mdx:321', 'ConnectorClass').object as unknown as Obj,
    connector: () => pointed('docs/en/connectors/concepts/connectors_csi.mdx:53', 'git-connector', gitOrigin),
    configs: [{ configuration: 'config', file: '.multi-connector-config', noClient: 'free-form text, no client' }],
  },
];

/** Several docs classes share a name (git): each row gets its own class and Connector names. */
function rowObjects(row: Row, i: number): { cls: Obj; connector: Obj; secret?: Obj } {
  const cls = structuredClone(row.cls());
  const c = row.connector();
  const connector = structuredClone(c.object) as Obj & { spec: Record<string, unknown> };
  const className = `${cls.metadata.name}-r${i}`;
  cls.metadata = { ...cls.metadata, name: className };
  connector.metadata = { ...connector.metadata, name: `${connector.metadata.name}-r${i}` };
  connector.spec.connectorClassName = className;
  let secret: Obj | undefined;
  if (c.secret) {
    secret = structuredClone(c.secret);
    secret.metadata = { ...secret.metadata, name: `${secret.metadata.name}-r${i}` };
    const auth = connector.spec.auth as { secretRef?: { name: string } } | undefined;
    if (auth?.secretRef) auth.secretRef = { name: secret.metadata.name };
  }
  return { cls, connector, secret };
}

// ---- results ---------------------------------------------------------------------------

const table = new Map<string, { applies?: string; ready?: string; configs: string[] }>();
const cell = (label: string): { applies?: string; ready?: string; configs: string[] } => {
  let c = table.get(label);
  if (c === undefined) table.set(label, c = { configs: [] });
  return c;
};

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cproxy-accept-'));
  const env = { PATH: process.env.PATH, HOME: root, GIT_CONFIG_NOSYSTEM: '1', LANG: 'C' };
  const init = await run('git', ['init', '-q', '--bare', join(root, 'repos', 'repo.git')], { env });
  assert.equal(init.code, 0, init.stderr);
  const git = gitHttpHandler({ projectRoot: join(root, 'repos'), credentials: GIT });
  // `/` answers like a Git host's front page (the docs' classes probe it for liveness).
  ({ server: gitServer, origin: gitOrigin } = await listen((req, res) => {
    if (req.url === '/') { req.resume(); res.writeHead(200).end('git server\n'); return; }
    git(req, res);
  }));
  ({ server: mavenServer, origin: mavenOrigin } = await listen(mavenHandler));
  // Verdaccio with its web UI: the docs' npm class probes `/`, which a registry with a front page answers.
  [registry, verdaccio, pypi, kube] = await Promise.all([startRegistryHarness(REGISTRY.username, REGISTRY.password), startVerdaccio(undefined, undefined, { web: true }), startPypiserver(), startKube()]);
  await kube.applyYaml(docs(example('deploy/crds/connectorclasses.yaml'), example('deploy/crds/connectors.yaml')));
  await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
  await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
  await kube.kubectl(['create', 'namespace', NS]);
  await kube.kubectl(['create', 'serviceaccount', 'reader', '-n', NS]);
  k8sToken = await kube.createServiceAccountToken(NS, 'reader');

  const manifests: Record<string, string> = {
    'k8s-ca.yaml': stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'k8s-ca', namespace: NS }, stringData: { 'ca.crt': kube.caCert } }),
  };
  ROWS.forEach((row, i) => {
    const o = rowObjects(row, i);
    manifests[`row-${i}.yaml`] = docs(o.cls, o.connector, ...(o.secret ? [o.secret] : []));
  });
  port = await freePort();
  proxy = await startProxy({
    manifests, domain: 'localhost',
    args: ['--listen', `127.0.0.1:${port}`, '--public-url', `http://127.0.0.1:${port}`, '--probe-interval-ms', '1000', '--probe-timeout-ms', '3000', '--enable-custom-ca-certs'],
  });
  // maven-help-plugin from Maven Central, once (cached with the other downloads).
  mkdirSync(MAVEN_REPO, { recursive: true });
  if (!existsSync(join(MAVEN_REPO, 'org', 'apache', 'maven', 'plugins', 'maven-help-plugin', '3.5.1'))) {
    const r = await run('mvn', ['-B', '-q', `-Dmaven.repo.local=${MAVEN_REPO}`, 'org.apache.maven.plugins:maven-help-plugin:3.5.1:help'], { cwd: root, env: { PATH: process.env.PATH, HOME: root }, timeoutMs: 300_000 });
    if (r.code !== 0) mavenHelp = `maven-help-plugin could not be fetched from Maven Central: ${r.stdout.toString().split('\n').find((l) => /ERROR/.test(l)) ?? r.stderr.trim().slice(-200)}`;
  }
}, { timeout: 600_000 });

after(async () => {
  await proxy?.stop();
  for (const s of [gitServer, mavenServer]) if (s) { s.closeAllConnections(); await new Promise<void>((r) => s.close(() => r())); }
  await Promise.allSettled([registry?.stop(), verdaccio?.stop(), pypi?.stop(), kube?.stop()]);
  if (root) rmSync(root, { recursive: true, force: true });
  // The README table, from what this run saw.
  const lines = ['| class | class YAML | applies | Ready=True | configuration → client |', '|---|---|---|---|---|'];
  for (const row of ROWS) {
    const c = cell(row.label);
    lines.push(`| ${row.label} | ${row.source} | ${c.applies ?? '?'} | ${c.ready ?? '?'} | ${c.configs.join('<br>') || '—'} |`);
  }
  process.stdout.write(`\n${lines.join('\n')}\n`);
}, { timeout: 120_000 });

interface Cond { type: string; status: string; reason?: string; message?: string }

async function conditions(name: string): Promise<Record<string, Cond> | undefined> {
  const r = await request(`http://127.0.0.1:${proxy.opsPort}/status`);
  const item = (JSON.parse(r.text) as { items: Array<{ kind: string; namespace?: string; name: string; conditions: Cond[] }> }).items
    .find((i) => i.kind === 'Connector' && i.namespace === NS && i.name === name);
  return item && Object.fromEntries(item.conditions.map((c) => [c.type, c]));
}

describe('every docs ConnectorClass: applies, Ready=True against a real server, configurations a real client accepts', () => {
  ROWS.forEach((row, i) => {
    describe(row.label, () => {
      test('applies on the real API server (--validate=strict)', async () => {
        const o = rowObjects(row, i);
        const r = await kube.kubectl(['apply', '--validate=strict', '-f', '-'], { input: docs(o.cls, o.connector, ...(o.secret ? [o.secret] : [])) });
        cell(row.label).applies = r.code === 0 ? 'yes' : 'NO';
        assert.equal(r.code, 0, r.stderr);
      });

      test(row.noServer ? `Ready: not checked (${row.noServer})` : 'Ready=True after real probes', { skip: row.noServer }, async () => {
        const name = rowObjects(row, i).connector.metadata.name;
        const deadline = Date.now() + 30_000;
        let conds: Record<string, Cond> | undefined;
        for (;;) {
          conds = await conditions(name);
          if (conds?.Ready?.status === 'True' || Date.now() > deadline) break;
          await sleep(200);
        }
        const probes = ['LivenessReady', 'AuthReady'].filter((t) => conds?.[t] && conds[t]!.reason === '').map((t) => t.replace('Ready', '')).join('+');
        cell(row.label).ready = conds?.Ready?.status === 'True' ? `yes (${probes ? `${probes} probed` : 'no probes in the class'})` : 'NO';
        assert.equal(conds?.Ready?.status, 'True', Object.values(conds ?? {}).map((c) => `${c.type}=${c.status} ${c.reason ?? ''}: ${c.message ?? ''}`).join('\n'));
      });
      if (row.noServer) test('(table)', () => { cell(row.label).ready = `n/a: ${row.noServer}`; });

      for (const conf of row.configs) {
        test(`configuration ${conf.configuration} renders ${conf.file}${conf.client ? `; ${conf.client.name} accepts it` : ` (${conf.noClient})`}`, async () => {
          const name = rowObjects(row, i).connector.metadata.name;
          const q = new URLSearchParams({ connectors: `${NS}/${name}`, 'configuration.names': conf.configuration });
          if (conf.params) q.set('configuration.params', JSON.stringify({ [conf.configuration]: conf.params }));
          const r = await request(`http://127.0.0.1:${port}/configurations/files?${q}`, { headers: { authorization: `Bearer ${TOKEN}` } });
          const record = (what: string): void => { cell(row.label).configs.push(`${conf.configuration} → ${conf.file}: ${what}`); };
          if (r.status !== 200) { record(`NOT rendered (${r.status})`); assert.fail(`${r.status} ${r.text}`); }
          const text = (JSON.parse(r.text) as { files: Record<string, string> }).files[conf.file];
          assert.ok(text !== undefined, `no ${conf.file} in ${r.text.slice(0, 300)}`);
          assert.doesNotMatch(text, /<no value>/, text);
          if (!conf.client) { record(`renders; ${conf.noClient}`); return; }
          const dir = mkdtempSync(join(root, 'client-'));
          const file = join(dir, conf.file);
          writeFileSync(file, text, { mode: 0o600 });
          try {
            await conf.client.run(file, dir);
            record(`renders; \`${conf.client.name}\` accepts it`);
          } catch (e) {
            const msg = (e as Error).message;
            if (msg.startsWith('skipped: ')) { record(`renders; ${conf.client.name} not run: ${msg.slice(9)}`); return; }
            record(`renders; ${conf.client.name} REFUSES it`);
            throw e;
          }
        });
      }
    });
  });
});

describe('the CLI as an init container under the restricted Pod Security level', () => {
  test('examples/init-container/pod.yaml passes a server-side dry run in a namespace enforcing restricted', async () => {
    await kube.applyYaml(docs(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'restricted-demo', labels: { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' } } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'builder', namespace: 'restricted-demo' } },
    ));
    const pod = example('examples/init-container/pod.yaml');
    const r = await kube.kubectl(['apply', '--dry-run=server', '--validate=strict', '-n', 'restricted-demo', '-f', '-'], { input: pod });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pod\/[a-z-]+ created \(server dry run\)/);
    assert.doesNotMatch(r.stderr, /violate|Warning/i, r.stderr);
    // What the dry run admitted is the restricted Pod: no root, no escalation, capabilities dropped.
    const obj = parseAllDocuments(pod)[0]!.toJS() as { spec: { securityContext: { runAsNonRoot: boolean }; initContainers: Array<{ args: string[] }> } };
    assert.equal(obj.spec.securityContext.runAsNonRoot, true);
    assert.equal(obj.spec.initContainers[0]!.args[0], 'configurations');
  });
});
