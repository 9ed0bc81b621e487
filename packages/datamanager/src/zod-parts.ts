/**
 * The parts of zod the config schema is built from (config.ts). Only for the build: scripts/
 * bundle-zod.js bundles this module with what it names into one CommonJS file, dist/zod-parts.cjs,
 * which config.ts loads on the first validation. zod itself loads ~95 modules (all 60-odd
 * locales among them) in ~50 ms of a process's start; the bundle holds only these parts and the
 * English messages and loads in under 10 ms.
 */
import { array, boolean, enum as enum_, number, record, strictObject, string, union, unknown } from 'zod';

export const z = { array, boolean, enum: enum_, number, record, strictObject, string, union, unknown };
export type ZodParts = typeof z;
