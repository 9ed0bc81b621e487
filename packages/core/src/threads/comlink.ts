/**
 * comlink ships UMD only (no `exports`); load it through require with its own types. A bundle that
 * takes this file in (capture's thread bundles) keeps the require, resolved from the bundle's
 * own folder: such a package depends on comlink itself.
 */
import { createRequire } from 'node:module';
import type * as ComlinkNs from 'comlink';
import type { Endpoint } from 'comlink';

const require = createRequire(import.meta.url);
export const Comlink = require('comlink') as typeof ComlinkNs;
type NodeEndpointFn = (nep: unknown) => Endpoint;
const adapter = require('comlink/dist/umd/node-adapter.js') as NodeEndpointFn | { default: NodeEndpointFn };
export const nodeEndpoint: NodeEndpointFn = typeof adapter === 'function' ? adapter : adapter.default;
export type { Remote } from 'comlink';
