// `spec.configurations` rendered for one Connector and one caller (SPEC §2, §8): the files
// the CSI driver would mount (.gitconfig, config.json, ...). Templates see `.connector` (the
// Connector as JSON, with `status.proxyAddress` set to where this proxy serves it) and
// `.context.token` (the caller's own token). Each text is compiled once per class object.
import type { Connector, ConnectorClass } from '../types';
import { TemplateError } from './index';
import { classTemplate } from './class-templates';

export interface RenderedConfiguration {
  readonly name: string;
  readonly data: Record<string, string>;
}


/**
 * Renders every configuration of the class (or only `only`). Throws TemplateError naming
 * the class, the field and the position; the message never holds rendered text.
 */
export function renderConfigurations(cls: ConnectorClass, c: Connector, proxyAddress: string, token: string, only?: string): RenderedConfiguration[] {
  const connector = { ...c, status: { ...c.status, proxyAddress } };
  const data = { connector, context: { token } };
  const out: RenderedConfiguration[] = [];
  (cls.spec.configurations ?? []).forEach((conf, i) => {
    if (only !== undefined && conf.name !== only) return;
    const files: Record<string, string> = {};
    for (const [file, text] of Object.entries(conf.data ?? {})) {
      try {
        files[file] = classTemplate(cls, `spec.configurations[${i}].data[${JSON.stringify(file)}]`, text).render(data);
      } catch (e) {
        throw e instanceof TemplateError ? withoutToken(e, token) : e;
      }
    }
    out.push({ name: conf.name, data: files });
  });
  return out;
}

/**
 * What a template function says when it fails (sprig's `fail`, `required`) is the template's
 * own text, which may be the token: hidden, as it is and base64-encoded (as in `:<token>`).
 */
function withoutToken(e: TemplateError, token: string): TemplateError {
  if (token === '') return e;
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const detail = [b64(`:${token}`), b64(token), token].reduce((m, v) => m.split(v).join('***'), e.detail);
  return detail === e.detail ? e : new TemplateError(e.kind, e.templateName, e.line, e.column, detail);
}
