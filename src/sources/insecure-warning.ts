// A Connector with insecureSkipVerify sends credentials to a tool whose identity is not
// checked: say so loudly, once per reload of the objects (not once per request).
import type { Logger } from 'pino';
import type { ObjectStore } from './store';
import { INSECURE_SKIP_VERIFY_PARAM, insecureSkipVerify } from '../tls/ca-trust';

/** Coalesces a burst of watch events (an initial list) into one scan. */
const DEBOUNCE_MS = 200;

export function warnInsecureConnectors(store: ObjectStore, log: Logger): void {
  let timer: NodeJS.Timeout | undefined;
  store.onChange(() => {
    if (timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      for (const c of store.allConnectors()) {
        if (!insecureSkipVerify(c) || !c.spec.address.startsWith('https:')) continue;
        log.warn({ connector: `${c.metadata.namespace}/${c.metadata.name}`, address: c.spec.address, param: INSECURE_SKIP_VERIFY_PARAM },
          'TLS certificate verification is OFF for this Connector (spec.params insecureSkipVerify=true): its credentials go to whoever answers at its address');
      }
    }, DEBOUNCE_MS);
    timer.unref();
  });
}
