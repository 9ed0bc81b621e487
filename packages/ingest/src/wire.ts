/**
 * Strict decoding: protobufjs (under @grpc/proto-loader) silently drops fields it does not
 * know, so a client speaking a newer or wrong contract would have data ignored without
 * notice. Before the normal deserializer runs, `findUnknownField` walks the raw protobuf wire
 * bytes against the field numbers declared in sync.proto (taken from the loaded descriptors,
 * recursing into message-typed fields) and reports the first field number the contract does
 * not declare, or a wire type that does not match the declaration.
 *
 * A deserializer that throws makes grpc-js answer INTERNAL, so instead the wrapped
 * deserializer returns a `BadMessage` value and the handler answers INVALID_ARGUMENT with its
 * reason.
 */
import type * as grpc from '@grpc/grpc-js';
import { dataSyncService, loadSyncProto } from '@edgecap/proto';

const PKG = 'edgecap.sync.v1';

interface FieldInfo {
  name: string;
  /** Allowed wire types. */
  wire: readonly number[];
  /** Message type name for message-typed fields. */
  message?: string;
}
type Schema = Map<number, FieldInfo>;

interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
}

const WIRE_OF: Record<string, number> = {
  TYPE_MESSAGE: 2,
  TYPE_STRING: 2,
  TYPE_BYTES: 2,
  TYPE_INT64: 0,
  TYPE_UINT64: 0,
  TYPE_INT32: 0,
  TYPE_UINT32: 0,
  TYPE_SINT32: 0,
  TYPE_SINT64: 0,
  TYPE_BOOL: 0,
  TYPE_ENUM: 0,
  TYPE_FIXED64: 1,
  TYPE_SFIXED64: 1,
  TYPE_DOUBLE: 1,
  TYPE_FIXED32: 5,
  TYPE_SFIXED32: 5,
  TYPE_FLOAT: 5,
};

let schemas: Map<string, Schema> | undefined;

function loadSchemas(): Map<string, Schema> {
  if (schemas) return schemas;
  const ns = (loadSyncProto() as unknown as { edgecap: { sync: { v1: Record<string, unknown> } } }).edgecap.sync.v1;
  const out = new Map<string, Schema>();
  for (const [name, def] of Object.entries(ns)) {
    const d = def as { format?: string; type?: { field?: FieldDescriptor[] } };
    if (d.format !== 'Protocol Buffer 3 DescriptorProto' || !d.type?.field) continue;
    const schema: Schema = new Map();
    for (const f of d.type.field) {
      const w = WIRE_OF[f.type];
      if (w === undefined) throw new Error(`unsupported field type ${f.type} in ${name}.${f.name}`);
      const packable = f.label === 'LABEL_REPEATED' && w !== 2;
      const info: FieldInfo = { name: f.name, wire: packable ? [w, 2] : [w] };
      if (f.type === 'TYPE_MESSAGE') info.message = f.typeName.split('.').at(-1)!;
      schema.set(f.number, info);
    }
    out.set(name, schema);
  }
  schemas = out;
  return out;
}

/** Read a varint at `o`; returns [value, next offset] (value exact up to 2^53). */
function varint(b: Uint8Array, o: number, end: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (o >= end) throw new Error('truncated varint');
    const byte = b[o++]!;
    v += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return [v, o];
    mul *= 128;
  }
  throw new Error('varint longer than 10 bytes');
}

function scan(b: Uint8Array, start: number, end: number, type: string, all: Map<string, Schema>): string | undefined {
  const schema = all.get(type);
  if (!schema) return `no schema for ${PKG}.${type}`;
  let o = start;
  while (o < end) {
    const [tag, next] = varint(b, o, end);
    o = next;
    const num = Math.floor(tag / 8);
    const wire = tag % 8;
    const f = schema.get(num);
    if (num === 0) return `malformed ${PKG}.${type}: field number 0`;
    if (!f) return `unknown field number ${num} (wire type ${wire}) in ${PKG}.${type}`;
    if (!f.wire.includes(wire)) return `field ${PKG}.${type}.${f.name} has wire type ${wire}, expected ${f.wire.join(' or ')}`;
    switch (wire) {
      case 0:
        o = varint(b, o, end)[1];
        break;
      case 1:
        o += 8;
        break;
      case 5:
        o += 4;
        break;
      case 2: {
        const [len, p] = varint(b, o, end);
        if (p + len > end) return `malformed ${PKG}.${type}: field ${f.name} runs past the end of the message`;
        if (f.message) {
          const inner = scan(b, p, p + len, f.message, all);
          if (inner) return inner;
        }
        o = p + len;
        break;
      }
      default:
        return `malformed ${PKG}.${type}: unsupported wire type ${wire}`;
    }
    if (o > end) return `malformed ${PKG}.${type}: field ${f.name} runs past the end of the message`;
  }
  return undefined;
}

/** The first reason the bytes are not a well-formed `type` message of our contract, or undefined. */
export function findUnknownField(bytes: Uint8Array, type: string): string | undefined {
  try {
    return scan(bytes, 0, bytes.length, type, loadSchemas());
  } catch (e) {
    return `malformed ${PKG}.${type}: ${(e as Error).message}`;
  }
}

/** What the strict deserializer hands the handler instead of a message it refuses. */
export class BadMessage {
  constructor(readonly reason: string) {}
}

/** The DataSync service definition with every request deserializer made strict. */
export function strictDataSyncService(): grpc.ServiceDefinition {
  const base = dataSyncService() as unknown as Record<string, grpc.MethodDefinition<unknown, unknown> & { requestType: { type: { name: string } } }>;
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [method, def] of Object.entries(base)) {
    const type = def.requestType.type.name;
    const orig = def.requestDeserialize;
    out[method] = {
      ...def,
      requestDeserialize: (buf: Buffer): unknown => {
        const reason = findUnknownField(buf, type);
        if (reason) return new BadMessage(reason);
        try {
          return orig(buf);
        } catch (e) {
          return new BadMessage(`malformed ${PKG}.${type}: ${(e as Error).message}`);
        }
      },
    };
  }
  return out as grpc.ServiceDefinition;
}
