import { pathToFileURL } from 'node:url';
import { EdgecapError, ErrorCodes } from '@edgecap/core';
import { SIM_MODELS, type LoadedResource, type ResourceCtx } from './sims.js';

/**
 * Models a config can name without a module: the sims and `http` (see http.ts). undici loads
 * only in a thread whose resource is an http one (about 8 MB and most of a thread's start-up).
 */
export const BUILTIN_MODELS: Readonly<Record<string, (ctx: ResourceCtx) => LoadedResource | Promise<LoadedResource>>> = {
  ...SIM_MODELS,
  http: async (ctx) => (await import('./http.js')).httpResource(ctx),
};
import type { ResourceSpec } from './types.js';

function loadError(spec: ResourceSpec, what: string, cause?: unknown): EdgecapError {
  const where = spec.module ? ` (module ${spec.module}${spec.export ? `, export ${spec.export}` : ''})` : spec.model ? ` (model ${spec.model})` : '';
  return new EdgecapError(ErrorCodes.RESOURCE_LOAD, `resource "${spec.name}"${where}: ${what}`, {
    cause,
    details: { resource: spec.name, module: spec.module, export: spec.export, model: spec.model },
  });
}

/**
 * Load a resource: a built-in sim model, or a user module whose default (or named) export is a
 * factory `(ctx) => resource` (may be async) or a resource object. Checks that every enabled
 * method exists. Returns the resource and its kind (resource.kind, else spec.kind, else generic).
 */
export async function loadResource(spec: ResourceSpec): Promise<{ resource: LoadedResource; kind: string }> {
  const ctx: ResourceCtx = { name: spec.name, attributes: spec.attributes ?? {} };
  let resource: unknown;
  if (spec.module) {
    let mod: Record<string, unknown>;
    try {
      const url = spec.module.startsWith('file:') ? spec.module : pathToFileURL(spec.module).href;
      mod = (await import(url)) as Record<string, unknown>;
    } catch (e) {
      throw loadError(spec, `cannot load module: ${(e as Error).message}`, e);
    }
    const exp = spec.export ?? 'default';
    if (!(exp in mod) || mod[exp] === undefined) throw loadError(spec, `module has no export "${exp}"`);
    const v = mod[exp];
    try {
      resource = typeof v === 'function' ? await (v as (c: ResourceCtx) => unknown)(ctx) : v;
    } catch (e) {
      throw loadError(spec, `factory threw: ${(e as Error).message}`, e);
    }
  } else if (spec.model) {
    const f = BUILTIN_MODELS[spec.model];
    if (!f) throw loadError(spec, `unknown model "${spec.model}" (built-in: ${Object.keys(BUILTIN_MODELS).join(', ')})`);
    try {
      resource = await f(ctx);
    } catch (e) {
      if (e instanceof EdgecapError) throw e; // the model's own verdict (e.g. CONFIG_INVALID attributes)
      throw loadError(spec, `model failed to load: ${(e as Error).message}`, e);
    }
  } else {
    throw loadError(spec, 'needs a model or a module');
  }
  if (resource === null || typeof resource !== 'object') throw loadError(spec, 'export is not a resource object or factory');
  const r = resource as LoadedResource;
  for (const m of spec.methods) {
    if (m.disabled) continue;
    if (typeof r[m.method] !== 'function') throw loadError(spec, `resource has no method "${m.method}"`);
  }
  const kind = typeof r.kind === 'string' && r.kind ? r.kind : spec.kind || 'generic';
  return { resource: r, kind };
}

export function enabledMethods(spec: ResourceSpec): ResourceSpec['methods'] {
  return spec.methods.filter((m) => !m.disabled && Number.isFinite(m.frequencyHz) && m.frequencyHz > 0);
}
