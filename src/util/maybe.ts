// Values that are usually ready at once (a cached decision, a prebuilt credential) and only
// sometimes need I/O. The request path stays synchronous on the common case and goes
// through this one helper instead of an `instanceof Promise` fork at every step.

export type MaybePromise<T> = T | Promise<T>;

/** Calls `next` with the value now when it is one, else when the promise fulfils; rejections go to `failed`. */
export function settle<T>(v: MaybePromise<T>, next: (v: T) => void, failed: (err: unknown) => void): void {
  if (v instanceof Promise) v.then(next, failed);
  else next(v);
}

/** `fn` applied now or later: a MaybePromise mapped without forcing a promise on the ready case. */
export function mapMaybe<T, U>(v: MaybePromise<T>, fn: (v: T) => MaybePromise<U>, failed?: (err: unknown) => MaybePromise<U>): MaybePromise<U> {
  if (v instanceof Promise) return failed === undefined ? v.then(fn) : v.then(fn, failed);
  return fn(v);
}

/** Every value: an array now when all are ready, else one promise of them all. */
export function allMaybe<T>(vs: ReadonlyArray<MaybePromise<T>>): MaybePromise<T[]> {
  return vs.some((v) => v instanceof Promise) ? Promise.all(vs) : vs as T[];
}
