// The http-proxy peer: the npm `http-proxy` package as it is commonly deployed, with a
// keep-alive agent and the fixed Authorization header set on every upstream request.
import { Agent, ServerResponse, createServer } from 'node:http';
import httpProxy from 'http-proxy';
import { listenAndAnnounce, peerArgs } from './common';

const { upstream, authorization } = peerArgs();
const proxy = httpProxy.createProxyServer({ target: upstream, agent: new Agent({ keepAlive: true }) });
proxy.on('proxyReq', (proxyReq) => proxyReq.setHeader('authorization', authorization));
proxy.on('error', (err, _req, res) => {
  if (res instanceof ServerResponse && !res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`upstream failed: ${err.message}\n`);
  else res.destroy();
});

listenAndAnnounce(createServer((req, res) => proxy.web(req, res)));
