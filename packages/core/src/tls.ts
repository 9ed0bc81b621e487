import fs from 'node:fs';
import { EdgecapError, ErrorCodes } from './errors.js';

/** A server's certificate and key as PEM files (the ingest, its UI, the edge's status server). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** The PEM bytes of `files`; a clear error naming the option (`field`) and the file when one cannot be read. */
export function readTlsFiles(files: TlsFiles, field: string): { cert: Buffer; key: Buffer } {
  const read = (file: string, name: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new EdgecapError(ErrorCodes.CONFIG_INVALID, `${field}.${name}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return { cert: read(files.certFile, 'certFile'), key: read(files.keyFile, 'keyFile') };
}
