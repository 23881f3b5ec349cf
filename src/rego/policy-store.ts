// Policies by text: compiled in the background when a ConnectorClass names them, shared
// by every Connector of the class, and announced when ready so routes swap to them at once.
import type { Logger } from 'pino';
import { PolicyCompiler } from './compiler';
import { WasmPolicy } from './policy';

export class PolicyHandle {
  policy: WasmPolicy | undefined;
  error: Error | undefined;
  readonly ready: Promise<WasmPolicy>;

  constructor(compile: Promise<WasmPolicy>) {
    this.ready = compile.then(
      (p) => { this.policy = p; return p; },
      (err: Error) => { this.error = err; throw err; },
    );
    this.ready.catch(() => { /* read through .error */ });
  }

  get settled(): boolean {
    return this.policy !== undefined || this.error !== undefined;
  }
}

export class PolicyStore {
  private readonly handles = new Map<string, PolicyHandle>();
  private readonly listeners: Array<(source: string) => void> = [];

  constructor(readonly compiler: PolicyCompiler, private readonly log: Logger) {}

  /** Called with the policy text when its compile finishes, so routes built on a pending handle are rebuilt. */
  onSettled(fn: (source: string) => void): void {
    this.listeners.push(fn);
  }

  /** The handle for `source`; starts compiling it on first sight. `what` names it in logs. */
  get(source: string, fileName: string, what: string): PolicyHandle {
    let h = this.handles.get(source);
    if (h === undefined) {
      const started = Date.now();
      h = new PolicyHandle(this.compiler.compile(source, fileName).then((wasm) => WasmPolicy.load(wasm, source)));
      this.handles.set(source, h);
      h.ready.then(
        (p) => this.log.info({ policy: what, ms: Date.now() - started, perRequest: !p.requestIndependent }, 'policy compiled'),
        (err: Error) => this.log.error({ policy: what, err: err.message }, 'policy does not compile'),
      ).finally(() => { for (const fn of this.listeners) fn(source); });
    }
    return h;
  }

  /** Forgets policies no ConnectorClass uses any more. */
  retain(sources: ReadonlySet<string>): void {
    for (const s of this.handles.keys()) if (!sources.has(s)) this.handles.delete(s);
  }
}
