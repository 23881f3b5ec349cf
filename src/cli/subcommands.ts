// Subcommands beside the server: `configurations` (what the docs' CSI driver mounts, fetched
// with the workload's token and written to a folder: an init container with a projected
// ServiceAccount token and an emptyDir, which works under the restricted Pod Security level
// where the CSI driver needs a privileged namespace) and `status` (embedded mode's view of
// Connector and ConnectorClass conditions).
import { Command, Option } from 'commander';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { request } from '../http/undici';

/** Where a Pod's own namespace is, for Connectors named without one (as the CSI driver uses the Pod's). */
const POD_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** A file name from a template key: no folders, no way out of the target folder. */
function safeName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw new Error(`refusing to write a file named ${JSON.stringify(name)}`);
  }
  return name;
}

interface ConfigurationsOptions {
  proxy: string;
  connectors?: string;
  connector?: string;
  namespace?: string;
  names?: string;
  configuration?: string[];
  params?: string;
  token?: string;
  tokenFile?: string;
  dir: string;
}

async function configurations(o: ConfigurationsOptions): Promise<void> {
  const token = (o.token ?? (o.tokenFile ? readFileSync(o.tokenFile, 'utf8') : '')).trim();
  if (token === '') throw new Error('give --token or --token-file (e.g. /var/run/secrets/kubernetes.io/serviceaccount/token)');
  const connectors = [o.connectors, o.connector].filter((v): v is string => v !== undefined && v !== '').join(',');
  if (connectors === '') throw new Error('give --connectors <namespace>/<name>[,...] (or --connector <name>)');
  const namespace = o.namespace ?? (existsSync(POD_NAMESPACE_FILE) ? readFileSync(POD_NAMESPACE_FILE, 'utf8').trim() : undefined);
  const names = [o.names, ...(o.configuration ?? [])].filter((v): v is string => v !== undefined && v !== '').join(',');
  const q = new URLSearchParams({ connectors });
  if (namespace) q.set('namespace', namespace);
  if (names) q.set('configuration.names', names);
  if (o.params) q.set('configuration.params', o.params);
  const base = o.proxy.replace(/\/+$/, '');
  const url = `${base}/configurations/files?${q}`;
  const res = await request(url, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${base}/configurations/files answered ${res.statusCode}: ${text.trim()}`);
  const body = JSON.parse(text) as { files?: Record<string, string> };
  const root = resolve(o.dir);
  // Every name is checked before anything is written: a refused name leaves no partial set.
  const files: Array<{ target: string; content: string }> = [];
  for (const [file, content] of Object.entries(body.files ?? {})) {
    const target = join(root, safeName(file));
    if (!target.startsWith(root + sep)) throw new Error(`refusing to write outside ${root}: ${file}`);
    files.push({ target, content });
  }
  mkdirSync(root, { recursive: true });
  for (const f of files) {
    // It holds the caller's token: a new 0600 file renamed over the target, so neither an
    // existing file's looser mode nor a symlink planted at the target is written through.
    const tmp = `${f.target}.${process.pid}.tmp`;
    writeFileSync(tmp, f.content, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, f.target);
    process.stdout.write(`${f.target}\n`);
  }
}

async function status(o: { ops: string; json?: boolean }): Promise<void> {
  const res = await request(`${o.ops.replace(/\/+$/, '')}/status`);
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${o.ops}/status answered ${res.statusCode}: ${text.trim()}`);
  if (o.json) { process.stdout.write(text); return; }
  const items = (JSON.parse(text) as { items: Array<{ kind: string; namespace?: string; name: string; conditions: Array<{ type: string; status: string; reason?: string; message?: string }> }> }).items;
  for (const it of items) {
    const ready = it.conditions.find((c) => c.type === 'Ready');
    process.stdout.write(`${it.kind} ${it.namespace ? `${it.namespace}/` : ''}${it.name}: Ready=${ready?.status ?? 'Unknown'}\n`);
    for (const c of it.conditions) if (c.type !== 'Ready') process.stdout.write(`  ${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}${c.message ? `: ${c.message}` : ''}\n`);
  }
}

/** Runs a subcommand when argv names one; false otherwise (then the server starts). */
export async function runSubcommand(argv: string[]): Promise<boolean> {
  const cmd = argv[0];
  if (cmd !== 'configurations' && cmd !== 'status') return false;
  const cli = new Command('connectors-proxy');
  cli.command('configurations')
    .description('write what the docs\' CSI driver mounts (built-in files and ConnectorClass configurations) into a folder, with your token')
    .requiredOption('--proxy <url>', 'the proxy, e.g. http://connectors-proxy-service.connectors-system.svc')
    .addOption(new Option('--connectors <list>', 'Connectors, comma-separated: <namespace>/<name> or <name> (CSI attribute `connectors`)').env('CONNECTORS'))
    .option('--connector <name>', 'one Connector (the CSI driver\'s deprecated `connector.name`)')
    .option('--namespace <ns>', `namespace of Connectors named without one (default: the Pod's, from ${POD_NAMESPACE_FILE})`)
    .addOption(new Option('--names <selectors>', 'configurations to include and !<file> to leave out, comma-separated (CSI `configuration.names`); without any, only the built-in files').env('CONFIGURATION_NAMES'))
    .option('--configuration <name>', 'one configuration to include (repeatable; adds to --names)', (v: string, acc: string[] = []) => [...acc, v])
    .addOption(new Option('--params <json>', 'parameters per configuration: {"<configuration>": {"<param>": "<value>"}} (CSI `configuration.params`)').env('CONFIGURATION_PARAMS'))
    .addOption(new Option('--token <token>', 'your ServiceAccount token').env('CONNECTORS_TOKEN'))
    .option('--token-file <file>', 'file holding the token (a projected ServiceAccount token)')
    .requiredOption('--dir <dir>', 'where to write the files (mode 0600), e.g. an emptyDir shared with the workload')
    .action(configurations);
  cli.command('status')
    .description('show Connector and ConnectorClass conditions of a running proxy')
    .option('--ops <url>', 'the proxy\'s ops listener', 'http://127.0.0.1:9090')
    .option('--json', 'print the raw JSON')
    .action(status);
  try {
    await cli.parseAsync(argv, { from: 'user' });
  } catch (e) {
    process.stderr.write(`connectors-proxy ${cmd}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
  return true;
}
