// The Connectors API gateway as a way into the pipeline (src/server/pipeline.ts): its own
// admission, a Rewrite that adds the X-Plugin headers for the class's API service, and
// Kubernetes Status errors. Credentials, streaming, limits, metrics and the access log are
// the pipeline's, as for proxy traffic.
import type { UpstreamRequest } from '../server/exchange';
import type { Admitted } from '../server/admission';
import type { Way } from '../server/pipeline';
import { GatewayAdmission, isServiceAdmission, type GatewayDeps } from './admission';
import { dropPluginHeaders } from '../http/plugin-headers';
import { sendStatus } from './status';

export const GATEWAY_WAY = 'gateway';

export function gatewayWay(deps: GatewayDeps): Way {
  const admission = new GatewayAdmission(deps);
  return { name: GATEWAY_WAY, admit: (req) => admission.admit(req), rewrite: addPluginHeaders, errorHandler: sendStatus };
}

function addPluginHeaders(out: UpstreamRequest, a: Admitted): void {
  if (!isServiceAdmission(a)) return;
  dropPluginHeaders(out.headers);
  out.headers.push(...a.pluginHeaders);
}
