// The Go reference (test/support/gotemplate): Go's text/template + sprig and cel-go, built
// once per test file with the installed Go from the committed go.mod/go.sum, fed cases on stdin.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from './run';

const GO_SOURCE = path.resolve(__dirname, '..', '..', '..', 'test', 'support', 'gotemplate');

export interface GoResult { readonly output?: string; readonly error?: string }
export type GoCase =
  | { readonly name: string; readonly template: string; readonly data: unknown }
  | { readonly cel: string; readonly response: { statusCode: number; headers: Record<string, string[]>; body: string } };

export interface GoReference {
  run(cases: readonly GoCase[]): Promise<GoResult[]>;
  remove(): Promise<void>;
}

export async function buildGoReference(): Promise<GoReference> {
  const dir = await mkdtemp(path.join(tmpdir(), 'gotemplate-'));
  const binary = path.join(dir, 'gotemplate');
  // -mod=readonly: go.mod/go.sum are committed and must not change; GOWORK/GOTOOLCHAIN keep
  // the build to this module and the installed Go.
  const build = await run('go', ['build', '-mod=readonly', '-o', binary, '.'], {
    cwd: GO_SOURCE,
    env: { ...process.env, GOWORK: 'off', GOTOOLCHAIN: 'local' },
    timeoutMs: 300_000,
  });
  if (build.code !== 0) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`go build of the reference failed:\n${build.stderr}`);
  }
  return {
    run: (cases) => new Promise((resolve, reject) => {
      const child = spawn(binary, [], { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let err = '';
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
      child.once('error', reject);
      child.once('close', (code) => {
        if (code !== 0) { reject(new Error(`reference exited ${code}: ${err}`)); return; }
        resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as GoResult[]);
      });
      child.stdin.end(JSON.stringify(cases));
    }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
