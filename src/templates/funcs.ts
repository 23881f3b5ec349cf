// The shape of template functions. Each declares its Go parameter types, because Go's
// evaluator checks and converts arguments by type (a literal 3 passed to an `int` parameter is
// fine; an int64 from the data is "wrong type for value; expected int; got int64").
import { GoValue } from './values';

/**
 *  any     interface{}
 *  value   reflect.Value (the builtins: sees missing values as such)
 *  string, int, bool, float64
 *  map     map[string]interface{}
 */
export type ParamType = 'any' | 'value' | 'string' | 'int' | 'bool' | 'float64' | 'map';

export const PARAM_TYPE_NAMES: Readonly<Record<ParamType, string>> = {
  any: 'interface {}',
  value: 'reflect.Value',
  string: 'string',
  int: 'int',
  bool: 'bool',
  float64: 'float64',
  map: 'map[string]interface {}',
};

export interface GoFunc {
  readonly params: readonly ParamType[];
  /** Type of each trailing ...argument, for variadic functions. */
  readonly variadic?: ParamType;
  readonly call: (args: GoValue[]) => GoValue;
}

/** An error a Go function returns (or a panic it raises); shown as "error calling NAME: MSG". */
export class FuncError extends Error {}

export type FuncMap = ReadonlyMap<string, GoFunc>;

export function fn(params: readonly ParamType[], call: (args: GoValue[]) => GoValue, variadic?: ParamType): GoFunc {
  return variadic === undefined ? { params, call } : { params, variadic, call };
}
