// Reads one file out of a gzipped tar (an OPA bundle). Bundles are small and come from our
// own `opa build`, so a minimal ustar reader is enough; no dependency for it.
import { gunzipSync } from 'node:zlib';

export function fileFromTarGz(archive: Buffer, wanted: (name: string) => boolean): Buffer | undefined {
  const tar = gunzipSync(archive);
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    const name = cString(header.subarray(0, 100));
    if (name === '') return undefined; // the two zero blocks that end an archive
    const size = parseInt(cString(header.subarray(124, 136)).trim() || '0', 8);
    const prefix = cString(header.subarray(345, 500));
    const body = offset + 512;
    if (wanted(prefix ? `${prefix}/${name}` : name)) return Buffer.from(tar.subarray(body, body + size));
    offset = body + Math.ceil(size / 512) * 512;
  }
  return undefined;
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}
