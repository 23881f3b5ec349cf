// Templates held in a ConnectorClass (probe paths and headers, configuration files), each
// compiled once per class object: a changed class is a new object, so its old compiled
// templates go with it. Errors name the class and the field.
import type { ConnectorClass } from '../types';
import { compileTemplate, type CompiledTemplate } from './index';

const compiled = new WeakMap<ConnectorClass, Map<string, CompiledTemplate>>();

export function classTemplate(cls: ConnectorClass, field: string, text: string): CompiledTemplate {
  let m = compiled.get(cls);
  if (m === undefined) compiled.set(cls, m = new Map());
  let t = m.get(field);
  if (t === undefined) m.set(field, t = compileTemplate(`ConnectorClass ${cls.metadata.name}, ${field}`, text));
  return t;
}
