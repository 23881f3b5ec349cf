// The CRDs in deploy/crds on a real API server: they are accepted (structural schemas),
// every ConnectorClass and Connector example of the public docs (test/fixtures/docs) applies
// with strict field validation and keeps every field it was written with, the demo manifests
// and the seed's complete Git class validate, bad objects are refused with the field named
// (also the x-kubernetes-validations rules files mode shares), and kubectl shows the printer columns.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './support/proxy';
import { startKube, type KubeCluster } from './support/kube';
import { docsExamples } from './support/docs-fixtures';

const crd = (f: string): string => readFileSync(join(REPO_ROOT, 'deploy', 'crds', f), 'utf8');

describe('CustomResourceDefinitions on a real API server', () => {
  let kube: KubeCluster;
  before(async () => {
    kube = await startKube();
    await kube.applyYaml(crd('connectorclasses.yaml') + '\n---\n' + crd('connectors.yaml'));
    await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    await kube.kubectl(['create', 'namespace', 'demo']);
  });
  after(async () => { await kube?.stop(); });

  test('the embedded demo manifests are valid objects of these CRDs', async () => {
    const out = await kube.applyYaml(readFileSync(join(REPO_ROOT, 'examples', 'embedded', 'demo.yaml'), 'utf8'));
    assert.match(out, /connectorclass\.connectors\.alauda\.io\/git created/);
    assert.match(out, /connector\.connectors\.alauda\.io\/git created/);
    const got = await kube.kubectl(['get', 'connectors', '-n', 'demo', '-o', 'wide']);
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /NAME\s+CLASS\s+ADDRESS\s+READY\s+REASON\s+PROXY\s+AGE/);
    assert.match(got.stdout, /^git\s+git\s+http:\/\/127\.0\.0\.1:8081\/git/m);
    const classes = await kube.kubectl(['get', 'ccls']);
    assert.match(classes.stdout, /^git\s+path/m);
  });

  test('every ConnectorClass and Connector example of the docs applies with --validate=strict and keeps all its fields', async () => {
    const examples = docsExamples();
    assert.ok(examples.filter((e) => e.object.kind === 'ConnectorClass').length >= 25, 'the docs classes');
    assert.ok(examples.filter((e) => e.object.kind === 'Connector').length >= 40, 'the docs Connectors');
    // One namespace per docs page: pages reuse Secret names with other types.
    const files = [...new Set(examples.map((e) => e.file))];
    const nsOf = (e: (typeof examples)[number]): string => e.object.metadata.namespace ?? `docs-${files.indexOf(e.file)}`;
    for (const ns of new Set(examples.map(nsOf))) await kube.kubectl(['create', 'namespace', ns]);
    for (const e of examples) {
      const ns = nsOf(e);
      const r = await kube.kubectl(['apply', '--validate=strict', '-n', ns, '-f', '-'], { input: e.text });
      assert.equal(r.code, 0, `${e.source}: ${r.stderr}`);
      assert.match(r.stdout, /(created|configured|unchanged)/, e.source);
      if (e.object.kind === 'Secret') continue;
      const path = e.object.kind === 'ConnectorClass'
        ? `/apis/connectors.alauda.io/v1alpha1/connectorclasses/${e.object.metadata.name}`
        : `/apis/connectors.alauda.io/v1alpha1/namespaces/${ns}/connectors/${e.object.metadata.name}`;
      const stored = await kube.api('GET', path);
      assert.equal(stored.status, 200, `${e.source}: ${stored.text}`);
      // Nothing the example says is pruned (what --validate=false would do silently).
      assertContains((stored.json as { spec: unknown }).spec, e.object.spec ?? {}, `${e.source}: spec`);
      for (const k of ['labels', 'annotations'] as const) {
        const want = (e.object.metadata as Record<string, unknown>)[k];
        if (want !== undefined) assertContains((stored.json as { metadata: Record<string, unknown> }).metadata[k], want, `${e.source}: metadata.${k}`);
      }
    }
  });

  test('admission rules shared with files mode name the field', async () => {
    const bad = async (yaml: string, re: RegExp): Promise<void> => {
      const r = await kube.kubectl(['apply', '--validate=strict', '-f', '-'], { input: yaml });
      assert.notEqual(r.code, 0, `accepted:\n${yaml}`);
      assert.match(r.stderr, re);
    };
    const connector = (spec: string): string => `apiVersion: connectors.alauda.io/v1alpha1\nkind: Connector\nmetadata: {name: x, namespace: demo}\nspec: ${spec}\n`;
    const cls = (spec: string): string => `apiVersion: connectors.alauda.io/v1alpha1\nkind: ConnectorClass\nmetadata: {name: rules}\nspec: ${spec}\n`;
    await bad(connector('{connectorClassName: git, address: "https://user:pw@example.com"}'), /spec\.address: Invalid value: "string": must be an http or https URL without credentials/);
    await bad(connector('{connectorClassName: git, address: "https://example.com/x?token=1"}'), /spec\.address: Invalid value: "string": must be an http or https URL without credentials/);
    await bad(connector('{connectorClassName: git, address: "https://example.com", addressExtensions: [{name: api, value: "https://example.com"}]}'), /spec\.addressExtensions: Invalid value: "object": an address extension must not repeat spec\.address/);
    await bad(connector('{connectorClassName: git, address: "https://example.com", addressExtensions: [{name: api, value: "not a url"}]}'), /spec\.addressExtensions\[0\]\.value/);
    await bad(connector('{connectorClassName: git, address: "https://example.com", params: [{name: a, value: "1"}, {name: a, value: "2"}]}'), /spec\.params\[1\]: Duplicate value/);
    await bad(cls('{auth: {types: [{name: pat, secretType: Opaque}]}}'), /spec\.auth\.types\[0\]\.params: Invalid value: "object": a secretType without fixed keys \(Opaque or custom\) must declare the Secret keys it needs in params/);
    await bad(cls('{livenessProbe: {api: {path: /health}}}'), /spec\.livenessProbe\.api: Invalid value: "object": livenessProbe\.api needs spec\.api/);
    await bad(cls('{livenessProbe: {http: {path: /, scheme: ftp}}}'), /spec\.livenessProbe\.http\.scheme: Unsupported value: "ftp"/);
    await bad(cls('{configurations: [{name: c, data: {a: x}}, {name: c, data: {b: y}}]}'), /spec\.configurations\[1\]: Duplicate value/);
    // A metadata-only class (the docs' display example) gets an empty spec.
    const ok = await kube.kubectl(['apply', '--validate=strict', '-f', '-'], { input: 'apiVersion: connectors.alauda.io/v1alpha1\nkind: ConnectorClass\nmetadata: {name: display-only}\n' });
    assert.equal(ok.code, 0, ok.stderr);
    const got = await kube.api('GET', '/apis/connectors.alauda.io/v1alpha1/connectorclasses/display-only');
    assert.deepEqual((got.json as { spec: unknown }).spec, {});
  });

  test("the seed's complete Git ConnectorClass example is accepted", { skip: !seedAvailable() }, async () => {
    const text = readFileSync(join(REPO_ROOT, '..', 'shared', 'seeds', '001_bbf16e5904dd59ec.txt'), 'utf8');
    // The last example of the reference: "完整的 Git 连接器配置示例" (the complete Git class).
    const from = text.indexOf('apiVersion:', text.lastIndexOf('完整的 Git 连接器配置示例'));
    const full = from < 0 ? undefined : text.slice(from, text.indexOf('\n\n', from));
    assert.ok(full !== undefined && /authProbes/.test(full) && /livenessProbe/.test(full), 'found the complete example in the seed');
    const parsed = parseAllDocuments(full!).map((d) => d.toJS() as { metadata: { name: string } });
    assert.equal(parsed.length, 1);
    const out = await kube.applyYaml(full!);
    assert.match(out, new RegExp(`connectorclass\\.connectors\\.alauda\\.io/${parsed[0]!.metadata.name} (created|configured)`));
  });

  test('bad objects are refused, naming the field', async () => {
    const bad = async (yaml: string, re: RegExp): Promise<void> => {
      await assert.rejects(kube.applyYaml(yaml), (e: Error) => { assert.match(e.message, re); return true; });
    };
    await bad(`apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: x, namespace: demo}
spec: {connectorClassName: git}
`, /spec\.address: Required value/);
    await bad(`apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: x, namespace: demo}
spec: {connectorClassName: git, address: "ftp://example.com"}
`, /spec\.address: Invalid value/);
    await bad(`apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: dup}
spec:
  auth:
    types:
      - {name: a, secretType: kubernetes.io/basic-auth}
      - {name: a, secretType: Opaque}
`, /spec\.auth\.types\[1\]: Duplicate value/);
    await bad(`apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: badprobe}
spec:
  livenessProbe: {http: {path: /, method: PUT}}
`, /spec\.livenessProbe\.http\.method: Unsupported value: "PUT"/);
  });

  test('status is a subresource: a spec update cannot write it', async () => {
    const r = await kube.api('PATCH', '/apis/connectors.alauda.io/v1alpha1/namespaces/demo/connectors/git',
      { status: { proxy: { httpAddress: { url: 'http://x' } } } });
    assert.equal(r.status, 415, 'JSON patch body needs a patch content type; use merge-patch below');
    const set = await kube.kubectl(['patch', 'connector', 'git', '-n', 'demo', '--type', 'merge', '-p', '{"status":{"proxy":{"httpAddress":{"url":"http://ignored"}}}}']);
    assert.equal(set.code, 0, set.stderr);
    const got = await kube.kubectl(['get', 'connector', 'git', '-n', 'demo', '-o', 'jsonpath={.status.proxy.httpAddress.url}']);
    assert.equal(got.stdout, '', 'status ignored on the main resource');
    const sub = await kube.kubectl(['patch', 'connector', 'git', '-n', 'demo', '--subresource', 'status', '--type', 'merge', '-p', '{"status":{"proxy":{"httpAddress":{"url":"http://proxy/namespaces/demo/connectors/git"}}}}']);
    assert.equal(sub.code, 0, sub.stderr);
    const after = await kube.kubectl(['get', 'connector', 'git', '-n', 'demo', '-o', 'jsonpath={.status.proxy.httpAddress.url}']);
    assert.equal(after.stdout, 'http://proxy/namespaces/demo/connectors/git');
  });
});

/** Every key and value of `want` is in `got` (lists element by element; `got` may have more keys, e.g. defaults). */
function assertContains(got: unknown, want: unknown, where: string): void {
  if (Array.isArray(want)) {
    assert.ok(Array.isArray(got) && got.length === want.length, `${where}: ${JSON.stringify(got)} vs ${JSON.stringify(want)}`);
    want.forEach((w, i) => assertContains((got as unknown[])[i], w, `${where}[${i}]`));
  } else if (want !== null && typeof want === 'object') {
    assert.ok(got !== null && typeof got === 'object' && !Array.isArray(got), `${where}: ${JSON.stringify(got)}`);
    for (const [k, w] of Object.entries(want)) assertContains((got as Record<string, unknown>)[k], w, `${where}.${k}`);
  } else {
    assert.deepEqual(got, want, where);
  }
}

function seedAvailable(): boolean {
  try { readFileSync(join(REPO_ROOT, '..', 'shared', 'seeds', '001_bbf16e5904dd59ec.txt')); return true; } catch { return false; }
}
