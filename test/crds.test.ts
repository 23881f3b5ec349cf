// The CRDs in deploy/crds on a real API server: they are accepted (structural schemas),
// the demo manifests and the seed's complete Git class validate, bad objects are refused
// with the field named, and kubectl shows the printer columns.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './support/proxy';
import { startKube, type KubeCluster } from './support/kube';

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
    assert.match(got.stdout, /NAME\s+CLASS\s+ADDRESS\s+READY\s+PROXY\s+AGE/);
    assert.match(got.stdout, /^git\s+git\s+http:\/\/127\.0\.0\.1:8081\/git/m);
    const classes = await kube.kubectl(['get', 'ccls']);
    assert.match(classes.stdout, /^git\s+path/m);
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

function seedAvailable(): boolean {
  try { readFileSync(join(REPO_ROOT, '..', 'shared', 'seeds', '001_bbf16e5904dd59ec.txt')); return true; } catch { return false; }
}
