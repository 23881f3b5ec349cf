// KeyedWorkQueue (src/util/work-queue.ts): the queue behind the status and Service writers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedWorkQueue } from '../src/util/work-queue';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

test('a key added while it waits is handled once; no more than `concurrency` run at once', async () => {
  const gates = new Map<string, ReturnType<typeof deferred>>();
  const handled: string[] = [];
  let running = 0;
  let most = 0;
  const q = new KeyedWorkQueue<string>(async (key) => {
    running++;
    most = Math.max(most, running);
    const g = deferred();
    gates.set(key, g);
    await g.promise;
    handled.push(key);
    running--;
  }, 2);
  for (const k of ['a', 'b', 'c', 'c', 'd', 'c']) q.add(k);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual([...gates.keys()], ['a', 'b'], 'two workers took the first two keys');
  for (let i = 0; i < 4; i++) {
    for (const [k, g] of gates) if (!handled.includes(k)) g.resolve();
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(handled.sort(), ['a', 'b', 'c', 'd'], 'c queued three times while waiting, handled once');
  assert.equal(most, 2);
});

test('a key added again while it is being handled is handled again afterwards (the change it saw may be stale)', async () => {
  const seen: string[] = [];
  const first = deferred();
  const q = new KeyedWorkQueue<string>(async (key) => {
    seen.push(key);
    if (seen.length === 1) await first.promise;
  }, 1);
  q.add('a');
  await new Promise((r) => setImmediate(r));
  q.add('a');
  first.resolve();
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['a', 'a']);
});

test('stop drops what waits and takes no new keys', async () => {
  const seen: string[] = [];
  const gate = deferred();
  const q = new KeyedWorkQueue<string>(async (key) => { seen.push(key); await gate.promise; }, 1);
  q.add('a');
  q.add('b');
  await new Promise((r) => setImmediate(r));
  q.stop();
  q.add('c');
  gate.resolve();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(seen, ['a']);
});
