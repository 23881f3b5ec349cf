// deploy/ (the kustomize install), its components and the examples/deploy overlays, against
// a real API server: what they render (replicas, anti-affinity, probes, security context,
// grace period, every PROXY_* variable a real flag), server-side dry runs of every overlay,
// a real install, re-apply, upgrade and uninstall, and the Pod Security admission: the pod
// template of the base and of every overlay is created as a Pod in the install's namespace
// (which enforces `restricted`), and non-compliant variants are refused there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { buildCli } from '../src/config';
import { LEADER_LEASE } from '../src/app';
import { FLAG_DEFINITIONS } from '../src/flags/feature-flags';
import { REPO_ROOT } from './support/proxy';
import { startKube, type KubeCluster } from './support/kube';

const NS = 'connectors-system';
const BASE = join(REPO_ROOT, 'deploy');
const EXAMPLES_DIR = join(REPO_ROOT, 'examples', 'deploy');
const EXAMPLES = readdirSync(EXAMPLES_DIR).sort();
const COMPONENTS = readdirSync(join(BASE, 'components')).sort();

// Loose views of the rendered objects: only what the checks read.
interface Meta { name: string; namespace?: string; labels?: Record<string, string> }
interface Obj { apiVersion: string; kind: string; metadata: Meta; spec?: Record<string, unknown> }
interface Probe { httpGet?: { path: string; port: string | number } }
interface Container {
  name: string; image: string; args?: string[];
  env?: Array<{ name: string; value?: string }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: Probe; livenessProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown> & { capabilities?: { drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  serviceAccountName?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  topologySpreadConstraints?: Array<{ topologyKey: string; whenUnsatisfiable: string; maxSkew: number }>;
  affinity?: { podAntiAffinity?: { preferredDuringSchedulingIgnoredDuringExecution?: Array<{ weight: number; podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } } }> } };
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: unknown; secret?: { secretName: string } }>;
}
interface HpaSpec {
  scaleTargetRef: { apiVersion: string; kind: string; name: string };
  minReplicas: number; maxReplicas: number;
  metrics: Array<{ type: string; resource?: { name: string; target: { type: string } } }>;
}
interface Deployment extends Obj {
  spec: { replicas: number; selector: { matchLabels: Record<string, string> }; strategy?: { rollingUpdate?: { maxUnavailable?: number } }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

const FLAG_ENVS = new Set(buildCli().options.map((o) => o.envVar).filter((e): e is string => e !== undefined));

function find<T extends Obj>(objs: readonly Obj[], kind: string, name?: string): T {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `${kind}${name ? ` ${name}` : ''} is rendered`);
  return o as T;
}
const deploymentOf = (objs: readonly Obj[]): Deployment => find<Deployment>(objs, 'Deployment', 'connectors-proxy');
const proxyContainer = (d: Deployment): Container => {
  const c = d.spec.template.spec.containers.find((x) => x.name === 'proxy');
  assert.ok(c, 'container proxy');
  return c;
};
const envOf = (c: Container): Map<string, string> => new Map((c.env ?? []).map((e) => [e.name, e.value ?? '']));
const portOf = (hostPort: string): number => Number(hostPort.split(':').pop());
const subset = (small: Record<string, string>, big: Record<string, string>): boolean => Object.entries(small).every(([k, v]) => big[k] === v);

describe('deploy/: kustomize install on a real API server', () => {
  let kube: KubeCluster;
  const rendered = new Map<string, Obj[]>();
  let tmp: string;

  const render = async (dir: string): Promise<Obj[]> => {
    const r = await kube.kubectl(['kustomize', dir]);
    assert.equal(r.code, 0, `kubectl kustomize ${dir}: ${r.stderr}`);
    return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj).filter((o) => o !== null);
  };
  const apply = async (args: readonly string[]): Promise<{ stdout: string; stderr: string }> => {
    const r = await kube.kubectl(['apply', ...args]);
    assert.equal(r.code, 0, `kubectl apply ${args.join(' ')}:\n${r.stdout}\n${r.stderr}`);
    return r;
  };

  before(async () => {
    kube = await startKube();
    tmp = mkdtempSync(join(tmpdir(), 'cproxy-deploy-'));
    rendered.set('deploy', await render(BASE));
    for (const e of EXAMPLES) rendered.set(e, await render(join(EXAMPLES_DIR, e)));
  });
  after(async () => {
    await kube?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test('the base renders the whole install: namespace, CRDs, ServiceAccount, RBAC, feature flags ConfigMap, Deployment, Service, PodDisruptionBudget', () => {
    const objs = rendered.get('deploy')!;
    assert.deepEqual(objs.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      'ClusterRole/connectors-proxy', 'ClusterRoleBinding/connectors-proxy', 'ConfigMap/connectors-config',
      'CustomResourceDefinition/connectorclasses.connectors.alauda.io', 'CustomResourceDefinition/connectors.connectors.alauda.io',
      'Deployment/connectors-proxy', 'Namespace/connectors-system', 'PodDisruptionBudget/connectors-proxy',
      'Role/connectors-proxy', 'RoleBinding/connectors-proxy',
      'Service/connectors-proxy-service', 'ServiceAccount/connectors-proxy',
    ]);
    // Every flag at its default: the docs' keys "false" as the docs ship them
    // (overview/feature_flags.mdx), this proxy's own enable-connect-tunnels "true".
    const cm = find<Obj & { data: Record<string, string> }>(objs, 'ConfigMap');
    assert.deepEqual(Object.keys(cm.data).sort(), FLAG_DEFINITIONS.map((d) => d.key).sort());
    // Every flag at its default (the docs' keys are all off; enable-connect-tunnels is on).
    for (const d of FLAG_DEFINITIONS) assert.equal(cm.data[d.key], String(d.default), d.key);
    // Least privilege in the proxy's own namespace: that ConfigMap and that Lease by name; the
    // proxy CA Secret is created when absent (create cannot be limited by name).
    const rules = find<Obj & { rules: Array<{ resources: string[]; resourceNames?: string[]; verbs: string[] }> }>(objs, 'Role').rules;
    assert.deepEqual(rules.map((r) => `${r.resources.join(',')}:${(r.resourceNames ?? ['*']).join(',')}:${r.verbs.join(',')}`),
      ['configmaps:connectors-config:get,list,watch', 'leases:*:create', `leases:${LEADER_LEASE}:get,update`, 'secrets:*:create']);
    const ns = find(objs, 'Namespace');
    assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    for (const o of objs) {
      if (['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o.kind)) continue;
      assert.equal(o.metadata.namespace, NS, `${o.kind} ${o.metadata.name} is in ${NS}`);
    }
  });

  test('the Deployment: 2 replicas, anti-affinity weight 100 on the node, restricted security context, probes on the ops port, drain-sized grace period, Kubernetes mode, writable policy cache and /tmp', () => {
    const objs = rendered.get('deploy')!;
    const d = deploymentOf(objs);
    const pod = d.spec.template.spec;
    const c = proxyContainer(d);
    const env = envOf(c);
    const labels = d.spec.template.metadata.labels;

    assert.equal(d.spec.replicas, 2);
    assert.equal(d.spec.strategy?.rollingUpdate?.maxUnavailable, 0, 'upgrades never go below the wanted ready proxies');
    assert.ok(subset(d.spec.selector.matchLabels, labels));
    const anti = pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    assert.equal(anti.length, 1);
    assert.equal(anti[0]!.weight, 100);
    assert.equal(anti[0]!.podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
    assert.ok(subset(anti[0]!.podAffinityTerm.labelSelector.matchLabels, labels), 'the anti-affinity selects the proxy pods');

    // The ServiceAccount that deploy/rbac.yaml binds.
    const sa = find(objs, 'ServiceAccount');
    assert.equal(pod.serviceAccountName, sa.metadata.name);
    const binding = find<Obj & { subjects: Array<{ kind: string; name: string; namespace: string }> }>(objs, 'ClusterRoleBinding');
    assert.ok(binding.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === pod.serviceAccountName && s.namespace === NS));

    // Restricted Pod Security Standard, plus a read-only root filesystem.
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.ok(Number(pod.securityContext?.runAsUser) > 0);
    assert.deepEqual(pod.securityContext?.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext?.runAsNonRoot, true);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);

    // Kubernetes mode, and every variable is one the binary reads.
    assert.deepEqual(c.args, ['--source', 'kubernetes']);
    for (const name of env.keys()) assert.ok(FLAG_ENVS.has(name), `${name} is the environment variable of a flag`);

    // Ports: the listeners the variables configure, probes on the ops port.
    const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
    assert.equal(ports.get('http'), portOf(env.get('PROXY_LISTEN')!));
    assert.equal(ports.get('metrics'), portOf(env.get('PROXY_OPS_LISTEN')!));
    assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'metrics' });
    assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'metrics' });

    // SIGTERM comes after the preStop sleep; the proxy's grace period must end before SIGKILL.
    const preStopMs = (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
    const graceMs = Number(env.get('PROXY_SHUTDOWN_GRACE_MS'));
    assert.ok(graceMs > 0);
    assert.ok((pod.terminationGracePeriodSeconds ?? 30) * 1000 > preStopMs + graceMs,
      `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${preStopMs} ms + --shutdown-grace-ms ${graceMs}`);

    // Writable places on a read-only root: the policy cache and the compiler's /tmp are emptyDirs.
    const emptyDirs = new Set((pod.volumes ?? []).filter((v) => v.emptyDir !== undefined).map((v) => v.name));
    const writable = (path: string): boolean => (c.volumeMounts ?? []).some((m) => emptyDirs.has(m.name) && (path === m.mountPath || path.startsWith(`${m.mountPath}/`)));
    assert.ok(writable(env.get('PROXY_POLICY_CACHE_DIR')!), 'the policy cache is on an emptyDir');
    assert.ok(writable('/tmp'), '/tmp is an emptyDir');
    assert.equal(env.get('PROXY_OPA'), '/usr/local/bin/opa', 'the OPA binary the Dockerfile installs');

    assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, 'requests and a memory limit');

    // Service and PodDisruptionBudget select these pods; the Service's target port exists.
    const svc = find<Obj & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> } }>(objs, 'Service');
    assert.ok(subset(svc.spec.selector, labels));
    for (const p of svc.spec.ports) assert.ok(ports.has(p.targetPort), `Service targetPort ${p.targetPort} is a container port`);
    const pdb = find<Obj & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>(objs, 'PodDisruptionBudget');
    assert.ok(subset(pdb.spec.selector.matchLabels, labels));
    assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < d.spec.replicas, 'a drain can always evict one pod');
  });

  test('each component does what it says, and nothing it adds names an unknown PROXY_* variable', () => {
    assert.deepEqual(COMPONENTS, ['autoscaling', 'node-placement', 'resources', 'servicemonitor', 'socket-buffers', 'tls', 'zone-spread']);
    for (const comp of COMPONENTS) assert.ok(EXAMPLES.includes(comp), `examples/deploy/${comp} applies the ${comp} component`);
    for (const e of EXAMPLES) {
      const c = proxyContainer(deploymentOf(rendered.get(e)!));
      for (const name of envOf(c).keys()) assert.ok(FLAG_ENVS.has(name), `${e}: ${name} is the environment variable of a flag`);
    }

    const zone = deploymentOf(rendered.get('zone-spread')!);
    assert.equal(zone.spec.replicas, 3);
    const spread = zone.spec.template.spec.topologySpreadConstraints ?? [];
    assert.ok(spread.some((t) => t.topologyKey === 'topology.kubernetes.io/zone' && t.whenUnsatisfiable === 'DoNotSchedule' && t.maxSkew === 1));
    assert.equal(zone.spec.template.spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]?.weight, 100, 'the base anti-affinity stays');

    const res = proxyContainer(deploymentOf(rendered.get('resources')!)).resources;
    assert.deepEqual(res?.limits, { cpu: '200m', memory: '256Mi' }, "the guide's connectors-proxy limits");

    const placed = deploymentOf(rendered.get('node-placement')!).spec.template.spec;
    assert.deepEqual(placed.nodeSelector, { 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/infra': '' });
    assert.equal(placed.tolerations?.length, 1);

    const tlsObjs = rendered.get('tls')!;
    const tls = proxyContainer(deploymentOf(tlsObjs));
    const tlsEnv = envOf(tls);
    assert.equal(portOf(tlsEnv.get('PROXY_TLS_LISTEN')!), tls.ports?.find((p) => p.name === 'https')?.containerPort);
    const tlsVolume = deploymentOf(tlsObjs).spec.template.spec.volumes?.find((v) => v.secret !== undefined);
    assert.equal(tlsVolume?.secret?.secretName, 'connectors-proxy-tls');
    const mount = tls.volumeMounts?.find((m) => m.name === tlsVolume?.name);
    assert.ok(mount && tlsEnv.get('PROXY_TLS_CERT')!.startsWith(`${mount.mountPath}/`) && tlsEnv.get('PROXY_TLS_KEY')!.startsWith(`${mount.mountPath}/`));
    const tlsSvc = find<Obj & { spec: { ports: Array<{ name: string; port: number; targetPort: string }> } }>(tlsObjs, 'Service', 'connectors-proxy-service');
    assert.deepEqual(tlsSvc.spec.ports.map((p) => `${p.name}:${p.port}->${p.targetPort}`).sort(), ['http:80->http', 'https:443->https']);

    // autoscaling: the HPA owns the replica count; the PDB allows one disruption at any count.
    const asObjs = rendered.get('autoscaling')!;
    const asDep = deploymentOf(asObjs);
    const hpa = find<Obj & { spec: HpaSpec }>(asObjs, 'HorizontalPodAutoscaler', 'connectors-proxy');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.equal(hpa.metadata.namespace, NS);
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: asDep.metadata.name });
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas, `replicas ${hpa.spec.minReplicas}..${hpa.spec.maxReplicas}`);
    assert.deepEqual(hpa.spec.metrics.map((m) => `${m.type}/${m.resource?.name}/${m.resource?.target.type}`), ['Resource/cpu/Utilization']);
    assert.equal(asDep.spec.replicas, undefined, 'no replicas in the Deployment: each apply would reset what the HPA chose');
    assert.ok(proxyContainer(asDep).resources?.requests?.cpu, 'CPU utilization is measured against the request');
    const asPdb = find<Obj & { spec: { minAvailable?: number; maxUnavailable?: number; selector: { matchLabels: Record<string, string> } } }>(asObjs, 'PodDisruptionBudget');
    assert.deepEqual([asPdb.spec.minAvailable, asPdb.spec.maxUnavailable], [undefined, 1]);
    assert.ok(subset(asPdb.spec.selector.matchLabels, asDep.spec.template.metadata.labels));
    assert.ok(hpa.spec.minReplicas - asPdb.spec.maxUnavailable! >= 1, 'at the HPA floor a drain still leaves a proxy serving');

    // socket-buffers: a 1 MiB ceiling on the kernel send buffer, the base's pod security context kept
    // (the Pod Security test below admits it under `restricted`: a safe sysctl since 1.32).
    const sbPod = deploymentOf(rendered.get('socket-buffers')!).spec.template.spec;
    const sysctls = (sbPod.securityContext as { sysctls?: Array<{ name: string; value: string }> }).sysctls;
    assert.deepEqual(sysctls, [{ name: 'net.ipv4.tcp_wmem', value: '4096 16384 1048576' }]);
    assert.equal(sbPod.securityContext?.runAsNonRoot, true);
    assert.deepEqual(sbPod.securityContext?.seccompProfile, { type: 'RuntimeDefault' });

    const smObjs = rendered.get('servicemonitor')!;
    const sm = find<Obj & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string }> } }>(smObjs, 'ServiceMonitor');
    const selected = smObjs.filter((o) => o.kind === 'Service' && subset(sm.spec.selector.matchLabels, o.metadata.labels ?? {}));
    assert.deepEqual(selected.map((s) => s.metadata.name), ['connectors-proxy-metrics'], 'the ServiceMonitor selects only the metrics Service');
    const metricsSvc = selected[0] as Obj & { spec: { ports: Array<{ name: string; targetPort: string }> } };
    assert.equal(sm.spec.endpoints[0]!.path, '/metrics');
    assert.ok(metricsSvc.spec.ports.some((p) => p.name === sm.spec.endpoints[0]!.port && p.targetPort === 'metrics'));
  });

  test('server-side dry run of the base on an empty cluster, then `kubectl apply -k deploy/` installs it for real without Pod Security warnings', async () => {
    // A dry run creates nothing, so the namespace of the dry-run Deployment does not exist yet:
    // everything but the namespaced objects must pass, and those fail only for that reason.
    const dry = await kube.kubectl(['apply', '--dry-run=server', '-k', BASE]);
    const text = `${dry.stdout}\n${dry.stderr}`;
    assert.match(text, /namespace\/connectors-system created \(server dry run\)/);
    assert.match(text, /customresourcedefinition\.apiextensions\.k8s\.io\/connectors\.connectors\.alauda\.io created \(server dry run\)/);
    assert.match(text, /clusterrole\.rbac\.authorization\.k8s\.io\/connectors-proxy created \(server dry run\)/);
    for (const line of dry.stderr.split('\n').filter((l) => /^Error/.test(l))) assert.match(line, /namespaces "connectors-system" not found/);

    const r = await apply(['-k', BASE]);
    for (const o of ['namespace/connectors-system', 'serviceaccount/connectors-proxy', 'clusterrole.rbac.authorization.k8s.io/connectors-proxy',
      'clusterrolebinding.rbac.authorization.k8s.io/connectors-proxy', 'role.rbac.authorization.k8s.io/connectors-proxy',
      'rolebinding.rbac.authorization.k8s.io/connectors-proxy', 'configmap/connectors-config', 'deployment.apps/connectors-proxy', 'service/connectors-proxy-service',
      'poddisruptionbudget.policy/connectors-proxy', 'customresourcedefinition.apiextensions.k8s.io/connectors.connectors.alauda.io']) {
      assert.match(r.stdout, new RegExp(`${o.replace(/\./g, '\\.')} created`));
    }
    assert.doesNotMatch(r.stderr, /PodSecurity|[Ww]arning/, 'the namespace warns against restricted: the Deployment raised no warning');
    await kube.waitForCrdEstablished('connectors.connectors.alauda.io');
    await kube.waitForCrdEstablished('connectorclasses.connectors.alauda.io');
    const dep = await kube.api('GET', `/apis/apps/v1/namespaces/${NS}/deployments/connectors-proxy`);
    assert.equal(dep.status, 200);
    assert.equal((dep.json as Deployment).spec.replicas, 2);

    // Nothing differs from what is installed (no fight with the API server's defaults), so
    // re-applying (what an upgrade does) touches nothing that did not change.
    const diff = await kube.kubectl(['diff', '-k', BASE]);
    assert.equal(diff.code, 0, `kubectl diff -k deploy/ found differences:\n${diff.stdout}\n${diff.stderr}`);
  });

  test('server-side dry run of every example overlay (components alone and combined) against the installed base', async () => {
    // The ServiceMonitor kind comes with the Prometheus Operator; a minimal CRD stands in for it.
    await kube.applyYaml(SERVICEMONITOR_CRD);
    await kube.waitForCrdEstablished('servicemonitors.monitoring.coreos.com');
    for (const e of EXAMPLES) {
      const r = await apply(['--dry-run=server', '-k', join(EXAMPLES_DIR, e)]);
      assert.match(r.stdout, /deployment\.apps\/connectors-proxy (configured|unchanged) \(server dry run\)/, `${e}: ${r.stdout}`);
      assert.doesNotMatch(r.stderr, /PodSecurity|[Ww]arning/, `${e}: ${r.stderr}`);
      if (e === 'autoscaling') assert.match(r.stdout, /horizontalpodautoscaler\.autoscaling\/connectors-proxy created \(server dry run\)/);
      if (e === 'servicemonitor' || e === 'production') {
        assert.match(r.stdout, /servicemonitor\.monitoring\.coreos\.com\/connectors-proxy created \(server dry run\)/);
        assert.match(r.stdout, /service\/connectors-proxy-metrics created \(server dry run\)/);
      }
    }
    // Control: the namespace does warn about a Deployment whose pods would not be admitted,
    // so the absence of warnings above means something.
    const bad = structuredClone(deploymentOf(rendered.get('deploy')!));
    bad.spec.template.spec.containers[0]!.securityContext!.allowPrivilegeEscalation = true;
    const warned = await kube.kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify(bad) });
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
    // The dry runs changed nothing.
    const dep = await kube.api('GET', `/apis/apps/v1/namespaces/${NS}/deployments/connectors-proxy`);
    assert.equal((dep.json as Deployment).spec.replicas, 2);
    assert.equal((await kube.api('GET', `/api/v1/namespaces/${NS}/services/connectors-proxy-metrics`)).status, 404);
  });

  test('the pod template of the base and of every overlay is admitted as a Pod under the namespace\'s restricted Pod Security enforcement', async () => {
    const ns = await kube.api('GET', `/api/v1/namespaces/${NS}`);
    assert.equal((ns.json as Obj).metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    for (const [name, objs] of rendered) {
      const r = await kube.api('POST', `/api/v1/namespaces/${NS}/pods`, podFrom(deploymentOf(objs), `pss-${name}`));
      assert.equal(r.status, 201, `${name}: ${r.text}`);
      const created = r.json as { spec: PodSpec };
      assert.equal(created.spec.containers[0]!.securityContext?.readOnlyRootFilesystem, true);
    }
  });

  test('non-compliant variants of the pod are refused by that enforcement (and admitted where nothing is enforced)', async () => {
    const d = deploymentOf(rendered.get('deploy')!);
    await kube.kubectl(['create', 'namespace', 'unenforced']);
    await kube.kubectl(['create', 'serviceaccount', 'connectors-proxy', '-n', 'unenforced']);
    const variants: Array<[string, (p: PodSpec) => void, RegExp]> = [
      ['privilege escalation allowed', (p) => { p.containers[0]!.securityContext!.allowPrivilegeEscalation = true; }, /allowPrivilegeEscalation != false/],
      ['capabilities kept', (p) => { delete p.containers[0]!.securityContext!.capabilities; }, /unrestricted capabilities/],
      ['may run as root', (p) => { p.securityContext!.runAsNonRoot = false; p.containers[0]!.securityContext!.runAsNonRoot = false; }, /runAsNonRoot != true/],
      ['runs as uid 0', (p) => { p.securityContext!.runAsUser = 0; }, /runAsUser=0/],
      ['no seccomp profile', (p) => { delete p.securityContext!.seccompProfile; delete p.containers[0]!.securityContext!.seccompProfile; }, /seccompProfile/],
      ['a hostPath volume', (p) => { p.volumes!.push({ name: 'host', hostPath: { path: '/var/run' } } as never); }, /restricted volume type "hostPath"/],
    ];
    let i = 0;
    for (const [what, mutate, why] of variants) {
      const pod = podFrom(d, `bad-${++i}`);
      mutate(pod.spec);
      const refused = await kube.api('POST', `/api/v1/namespaces/${NS}/pods`, pod);
      assert.equal(refused.status, 403, `${what}: ${refused.text}`);
      const message = (refused.json as { message: string }).message;
      assert.match(message, /violates PodSecurity "restricted:latest"/, what);
      assert.match(message, why, what);
      const control = await kube.api('POST', '/api/v1/namespaces/unenforced/pods', { ...pod, metadata: { ...pod.metadata, namespace: 'unenforced' } });
      assert.equal(control.status, 201, `${what} is otherwise a valid Pod: ${control.text}`);
    }
  });

  test('upgrade: applying a new image tag updates the Deployment in place (rolling, never below the wanted replicas); RBAC and Service unchanged; feature flags come from the overlay, a hand edit of connectors-config is reset as the docs warn', async () => {
    // What an operator did after installing: turned a flag on by hand.
    const edit = await kube.kubectl(['patch', 'configmap', 'connectors-config', '-n', NS, '--type', 'merge', '-p', '{"data":{"enable-connector-proxy-permissions":"true"}}']);
    assert.equal(edit.code, 0, edit.stderr);
    // The user's own overlay: the released base with their registry, the new tag, and their
    // flags declared (the docs' ConnectorsConfig.spec.components.core.spec.featureFlags).
    const dir = mkdtempSync(join(tmp, 'upgrade-'));
    writeFileSync(join(dir, 'kustomization.yaml'), [
      'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization',
      `resources: [${JSON.stringify(relative(dir, BASE))}]`, // kustomize refuses absolute paths
      'images:', '  - name: connectors-proxy', '    newName: registry.example.com/connectors-proxy', '    newTag: 0.2.0',
      'patches:', '  - patch: |-', '      apiVersion: v1', '      kind: ConfigMap', '      metadata: {name: connectors-config, namespace: connectors-system}',
      '      data: {enable-custom-ca-certs: "true"}', '',
    ].join('\n'));
    const before = await kube.api('GET', `/apis/apps/v1/namespaces/${NS}/deployments/connectors-proxy`);
    const r = await apply(['-k', dir]);
    assert.match(r.stdout, /deployment\.apps\/connectors-proxy configured/);
    assert.doesNotMatch(r.stdout, /customresourcedefinition.*configured/, 'CRDs unchanged');
    const after = await kube.api('GET', `/apis/apps/v1/namespaces/${NS}/deployments/connectors-proxy`);
    const dep = after.json as Deployment & { metadata: { generation: number } };
    assert.equal(dep.spec.template.spec.containers[0]!.image, 'registry.example.com/connectors-proxy:0.2.0');
    assert.equal(dep.metadata.generation, (before.json as { metadata: { generation: number } }).metadata.generation + 1);
    for (const o of ['role.rbac.authorization.k8s.io/connectors-proxy', 'rolebinding.rbac.authorization.k8s.io/connectors-proxy', 'service/connectors-proxy-service']) {
      assert.match(r.stdout, new RegExp(`${o.replace(/\./g, '\\.')} unchanged`), `${o}: ${r.stdout}`);
    }
    const cm = (await kube.api('GET', `/api/v1/namespaces/${NS}/configmaps/connectors-config`)).json as { data: Record<string, string> };
    assert.equal(cm.data['enable-custom-ca-certs'], 'true', 'the overlay\'s flag');
    assert.equal(cm.data['enable-connector-proxy-permissions'], 'false', 'the hand edit is reset by the next apply');
  });

  test('uninstall: `kubectl delete -k deploy/` removes the cluster-wide objects and the workload', async () => {
    for (const p of ['pss-deploy', ...EXAMPLES.map((e) => `pss-${e}`)]) await kube.api('DELETE', `/api/v1/namespaces/${NS}/pods/${p}`);
    const r = await kube.kubectl(['delete', '--wait=false', '-k', BASE]);
    assert.equal(r.code, 0, r.stderr);
    for (const path of [
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/connectors-proxy',
      '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/connectors-proxy',
      `/apis/apps/v1/namespaces/${NS}/deployments/connectors-proxy`,
      `/api/v1/namespaces/${NS}/services/connectors-proxy-service`,
      `/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/connectors-proxy`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/connectors-proxy`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/connectors-proxy`,
      `/api/v1/namespaces/${NS}/configmaps/connectors-config`,
    ]) assert.equal((await kube.api('GET', path)).status, 404, path);
    // CRDs and the namespace go through finalizers (this harness has no namespace controller).
    for (const path of ['/apis/apiextensions.k8s.io/v1/customresourcedefinitions/connectors.connectors.alauda.io', `/api/v1/namespaces/${NS}`]) {
      const g = await kube.api('GET', path);
      assert.ok(g.status === 404 || (g.json as { metadata: { deletionTimestamp?: string } }).metadata.deletionTimestamp, `${path} is being deleted`);
    }
  });
});

/** A Pod with the Deployment's pod template, as the ReplicaSet controller would create it. */
function podFrom(d: Deployment, name: string): { apiVersion: string; kind: string; metadata: Meta; spec: PodSpec } {
  const t = structuredClone(d.spec.template);
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { ...t.metadata.labels, 'test.connectors-proxy/pss': 'true' } }, spec: t.spec };
}

/** Just enough of the Prometheus Operator's ServiceMonitor CRD for a dry run. */
const SERVICEMONITOR_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [selector, endpoints]
              properties:
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string, pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
`;

test('README: the configuration table names every flag with its environment variable, and the install sections follow the guide\'s order', () => {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  for (const o of buildCli().options) {
    assert.ok(readme.includes(`| \`${o.long}\` | \`${o.envVar}\` |`), `README's Configuration table has a row for ${o.long} / ${o.envVar}`);
  }
  const order = ['### How the guide\'s components map', '### Prerequisites', '### Pod Security', '### Install', '### Tool support',
    '### Upgrade', '### Uninstall', '### Customization', '### High availability', '### Troubleshooting', '## Configuration'];
  const at = order.map((h) => readme.indexOf(h));
  for (let i = 0; i < order.length; i++) assert.ok(at[i]! >= 0 && (i === 0 || at[i]! > at[i - 1]!), `README: "${order[i]}" after "${order[i - 1] ?? ''}"`);
});

