// src/http/undici.ts loads undici's modules one by one instead of its index (which also loads
// fetch, WebSocket, caches and mocks). These are the checks that an undici upgrade that moves
// a module breaks here, and not in production.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { loadedClasses, newPool, request } from '../src/http/undici';
import { REPO_ROOT } from './support/proxy';

test('the classes loaded are the ones undici exports', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const undici = require('undici') as typeof import('undici');
  assert.equal(loadedClasses.Dispatcher, undici.Dispatcher);
  assert.equal(loadedClasses.Pool, undici.Pool);
  assert.equal(loadedClasses.ProxyAgent, undici.ProxyAgent);
});

test('request(): absolute URL with the query, on a given dispatcher and on the global Agent; Dispatcher.request works on a Pool', async () => {
  const server = createServer((req, res) => res.end(`${req.method} ${req.url} ${req.headers['x-test'] ?? ''}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pool = newPool(origin, { connections: 1 });
  try {
    const viaGlobal = await request(`${origin}/a/b?x=1&y=2`, { headers: { 'x-test': 'g' } });
    assert.equal(viaGlobal.statusCode, 200);
    assert.equal(await viaGlobal.body.text(), 'GET /a/b?x=1&y=2 g');
    const viaPool = await request(new URL(`${origin}/p`), { method: 'POST', body: 'x', dispatcher: pool });
    assert.equal(await viaPool.body.text(), 'POST /p ');
    const direct = await pool.request({ origin, path: '/d', method: 'GET' });
    assert.equal(await direct.body.text(), 'GET /d ');
  } finally {
    await pool.close();
    server.close();
  }
});

test('the proxy binary never loads undici\'s index (nor its fetch)', () => {
  const script = `require(${JSON.stringify(join(REPO_ROOT, 'dist', 'src', 'app.js'))});
    const loaded = Object.keys(require.cache).filter((k) => /node_modules\\/undici\\/(index\\.js|lib\\/web\\/)/.test(k));
    process.stdout.write(JSON.stringify(loaded));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), []);
});
