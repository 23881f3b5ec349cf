// Subcommands beside the server: `configurations` (what an init container or the CSI driver
// does: fetch the rendered files with the workload's token and write them to a folder) and
// `status` (embedded mode's view of Connector and ConnectorClass conditions).
import { Command, Option } from 'commander';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { request } from 'undici';

interface Rendered { name: string; data: Record<string, string> }

/** A file name from a template key: no folders, no way out of the target folder. */
function safeName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\\') || name.includes('\0')) {
    throw new Error(`refusing to write a file named ${JSON.stringify(name)}`);
  }
  return name;
}

async function configurations(o: { proxy: string; namespace: string; connector: string; token?: string; tokenFile?: string; dir: string; configuration?: string }): Promise<void> {
  const token = (o.token ?? (o.tokenFile ? readFileSync(o.tokenFile, 'utf8') : '')).trim();
  if (token === '') throw new Error('give --token or --token-file (e.g. /var/run/secrets/kubernetes.io/serviceaccount/token)');
  const base = o.proxy.replace(/\/+$/, '');
  const path = `/configurations/namespaces/${encodeURIComponent(o.namespace)}/connectors/${encodeURIComponent(o.connector)}${o.configuration ? `/${encodeURIComponent(o.configuration)}` : ''}`;
  const res = await request(base + path, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${base}${path} answered ${res.statusCode}: ${text.trim()}`);
  const body = JSON.parse(text) as { configurations?: Rendered[] } & Partial<Rendered>;
  const list: Rendered[] = o.configuration ? [body as Rendered] : body.configurations ?? [];
  const root = resolve(o.dir);
  // Every name is checked before anything is written: a refused name leaves no partial set.
  const files: Array<{ dir: string; target: string; content: string }> = [];
  for (const conf of list) {
    const dir = o.configuration ? root : join(root, safeName(conf.name));
    for (const [file, content] of Object.entries(conf.data)) {
      const target = join(dir, safeName(file));
      if (!target.startsWith(root + sep)) throw new Error(`refusing to write outside ${root}: ${file}`);
      files.push({ dir, target, content });
    }
  }
  for (const f of files) {
    mkdirSync(f.dir, { recursive: true });
    // It holds the caller's token: a new 0600 file renamed over the target, so neither an
    // existing file's looser mode nor a symlink planted at the target is written through.
    const tmp = `${f.target}.${process.pid}.tmp`;
    writeFileSync(tmp, f.content, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, f.target);
    process.stdout.write(`${f.target}\n`);
  }
  if (files.length === 0) process.stderr.write('the ConnectorClass defines no configurations\n');
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
    .description('fetch a Connector\'s rendered configurations with your token and write them to a folder')
    .requiredOption('--proxy <url>', 'the proxy, e.g. http://connectors-proxy-service.connectors-system.svc')
    .requiredOption('--namespace <ns>', 'the Connector\'s namespace')
    .requiredOption('--connector <name>', 'the Connector')
    .addOption(new Option('--token <token>', 'your ServiceAccount token').env('CONNECTORS_TOKEN'))
    .option('--token-file <file>', 'file holding the token (a projected ServiceAccount token)')
    .option('--configuration <name>', 'only this configuration, its files directly in --dir')
    .requiredOption('--dir <dir>', 'where to write: <dir>/<configuration>/<file>, or <dir>/<file> with --configuration')
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
