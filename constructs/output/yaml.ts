import { Document, isScalar, visit } from 'yaml';
import { generatedHeader } from './header';
import type { SynthContext } from './types';

/** Drops undefined, empty arrays and empty objects so that renderers can write optional keys plainly. */
export function prune(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(prune).filter((v) => v !== undefined);
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const pruned = prune(v);
      if (pruned === undefined) continue;
      if (Array.isArray(pruned) && pruned.length === 0) continue;
      if (pruned !== null && typeof pruned === 'object' && !Array.isArray(pruned) && Object.keys(pruned).length === 0)
        continue;
      out[k] = pruned;
    }
    return out;
  }
  return value;
}

export interface YamlOptions {
  /** Sort mapping keys (default true). Kubernetes manifests keep apiVersion/kind/metadata first instead. */
  readonly sortKeys?: boolean;
}

const K8S_FIRST = ['apiVersion', 'kind', 'metadata', 'spec'];

/** The one YAML serializer: stable key order, no line folding, the generated-file header on top. */
export function renderYaml(
  docs: readonly unknown[],
  context: SynthContext,
  environment: string,
  options: YamlOptions = {},
): string {
  const sortKeys = options.sortKeys ?? true;
  const body = docs
    .map((doc) => {
      const d = new Document(prune(doc), {
        sortMapEntries: sortKeys
          ? (a, b) => {
              const ka = String(isScalar(a.key) ? a.key.value : a.key);
              const kb = String(isScalar(b.key) ? b.key.value : b.key);
              const ia = K8S_FIRST.indexOf(ka);
              const ib = K8S_FIRST.indexOf(kb);
              if (ia !== -1 || ib !== -1) return (ia === -1 ? 99 : ia) - (ib === -1 ? 99 : ib);
              return ka < kb ? -1 : ka > kb ? 1 : 0;
            }
          : false,
      });
      // Strings that look like numbers or booleans must stay strings for every consumer of the file.
      visit(d, {
        Scalar(_key, node) {
          if (typeof node.value === 'string' && /^(?:[0-9.:+-]+|true|false|yes|no|on|off|null|~)$/i.test(node.value)) {
            node.type = 'QUOTE_DOUBLE';
          }
        },
      });
      return d.toString({ lineWidth: 0, minContentWidth: 0 });
    })
    .join('---\n');
  return generatedHeader(context, environment) + body;
}
