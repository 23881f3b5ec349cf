// Compiles Rego to WebAssembly with the real OPA compiler (`opa build -t wasm`), once per
// policy text: results are cached by content hash in memory (in-flight compiles shared)
// and on disk, so a restart or a second Connector of the same class compiles nothing.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EXTRA_DECLARATIONS } from './builtins';
import { fileFromTarGz } from './tar';

const run = promisify(execFile);

/** OPA rejected the policy; the message is OPA's, with file:line, plus a hint when we have one. */
export class RegoCompileError extends Error {
  override readonly name = 'RegoCompileError';
}

class MissingCompilerError extends RegoCompileError {}

export interface CompilerOptions {
  readonly opaBin: string;
  /** Folder for compiled modules; undefined keeps them in memory only. */
  readonly cacheDir: string | undefined;
}

export class PolicyCompiler {
  /** How many times `opa build` ran (cache misses): tests and metrics read it. */
  compilerRuns = 0;
  private readonly inMemory = new Map<string, Promise<Buffer>>();
  private capabilities: Promise<{ file: string; fingerprint: string }> | undefined;

  constructor(private readonly opts: CompilerOptions) {}

  /**
   * Compiles `source` with entrypoint `proxy/auth`. `fileName` names the policy in errors,
   * e.g. `generator.rego`. Rego v0 syntax (as in the ConnectorClass examples) is tried
   * first, then v1.
   */
  compile(source: string, fileName: string): Promise<Buffer> {
    const key = createHash('sha256').update(source).digest('hex');
    let p = this.inMemory.get(key);
    if (p === undefined) {
      p = this.compileUncached(key, source, fileName);
      this.inMemory.set(key, p);
      // The same text fails the same way, so failures stay cached too; only a missing
      // compiler may be fixed later (installed while the proxy runs).
      p.catch((err: Error) => { if (err instanceof MissingCompilerError) this.inMemory.delete(key); });
    }
    return p;
  }

  private async compileUncached(key: string, source: string, fileName: string): Promise<Buffer> {
    const caps = await this.capabilitiesFile();
    const diskKey = createHash('sha256').update(caps.fingerprint).update('\0').update(key).digest('hex');
    const cached = this.opts.cacheDir && join(this.opts.cacheDir, `${diskKey}.wasm`);
    if (cached && existsSync(cached)) return readFileSync(cached);

    const dir = mkdtempSync(join(tmpdir(), 'cproxy-rego-'));
    try {
      const file = join(dir, fileName);
      writeFileSync(file, source);
      this.compilerRuns++;
      let firstError: string | undefined;
      for (const syntax of [['--v0-compatible'], []]) {
        try {
          await run(this.opts.opaBin, ['build', '-t', 'wasm', '-e', 'proxy/auth', ...syntax, '--capabilities', caps.file, '-o', join(dir, 'bundle.tar.gz'), file],
            { cwd: dir, timeout: 60_000, maxBuffer: 4 * 1024 * 1024 });
          firstError = undefined;
          break;
        } catch (err) {
          const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
          if (e.code === 'ENOENT') throw new MissingCompilerError(`the OPA compiler was not found at ${this.opts.opaBin} (run scripts/install-opa.sh or set --opa)`);
          // OPA prints compile errors on stdout, other failures on stderr.
          firstError ??= cleanOpaMessage(`${e.stdout ?? ''}\n${e.stderr ?? ''}`.trim() || e.message, dir);
          if (!/rego_parse_error/.test(firstError)) break; // only a parse error may be a v1 policy
        }
      }
      if (firstError !== undefined) throw new RegoCompileError(firstError + hintFor(firstError));
      const wasm = fileFromTarGz(readFileSync(join(dir, 'bundle.tar.gz')), (n) => n.replace(/^\/+/, '') === 'policy.wasm');
      if (wasm === undefined) throw new RegoCompileError('opa build produced no policy.wasm');
      if (cached) {
        mkdirSync(this.opts.cacheDir!, { recursive: true });
        writeFileSync(`${cached}.tmp`, wasm);
        renameSync(`${cached}.tmp`, cached);
      }
      return wasm;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** OPA's own capabilities plus the host-only builtins, written once per process. */
  private capabilitiesFile(): Promise<{ file: string; fingerprint: string }> {
    this.capabilities ??= (async () => {
      const { stdout } = await run(this.opts.opaBin, ['capabilities', '--current'], { maxBuffer: 16 * 1024 * 1024 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') throw new MissingCompilerError(`the OPA compiler was not found at ${this.opts.opaBin} (run scripts/install-opa.sh or set --opa)`);
        throw err;
      });
      const caps = JSON.parse(stdout) as { builtins: Array<{ name: string }> };
      caps.builtins.push(...EXTRA_DECLARATIONS);
      const text = JSON.stringify(caps);
      const dir = mkdtempSync(join(tmpdir(), 'cproxy-caps-'));
      const file = join(dir, 'capabilities.json');
      writeFileSync(file, text);
      return { file, fingerprint: createHash('sha256').update(text).digest('hex') };
    })();
    this.capabilities.catch(() => { this.capabilities = undefined; });
    return this.capabilities;
  }
}

/**
 * OPA's message on one line, without its banner, our temp folder or the source excerpt:
 * `generator.rego:8: rego_type_error: undefined function hmac.sha256`.
 */
export function cleanOpaMessage(output: string, dir: string): string {
  const lines = output.split(dir + '/').join('').split('\n')
    .map((l) => l.replace(/^error: /, '').replace(/^(load error: )?\d+ errors? occurred( during loading)?: ?/, '').replace(/ \(hint: if this is unexpected, try updating OPA\)/, '').trim())
    .filter((l) => /\.rego:\d+: /.test(l));
  return lines.length > 0 ? lines.join('; ') : output.trim().split('\n')[0]!;
}

const HINTS: ReadonlyArray<[RegExp, string]> = [
  [/unexpected import path.*got: time/, 'time.now_ns() is a builtin and needs no import: delete the line `import time`'],
  [/undefined function hmac\.sha(256|512)/, 'use hmac.sha256(key, message) or OPA\'s crypto.hmac.sha256(message, key)'],
  [/undefined function/, 'the function does not exist in OPA; see rego/README.md for the builtins connectors-proxy provides'],
  [/var \w+ is unsafe/, 'every variable must be bound; in v1 syntax rules need `if`'],
];

function hintFor(message: string): string {
  for (const [re, hint] of HINTS) if (re.test(message)) return ` (hint: ${hint})`;
  return '';
}
