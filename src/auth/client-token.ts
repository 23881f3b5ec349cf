// Takes the client's ServiceAccount token from `Authorization` (reverse mode):
// `Basic base64(<any user>:<token>)` or `Bearer <token>` (SPEC section 4).

/** Returns the token, or undefined when the header is absent or malformed. */
export function tokenFromAuthorization(header: string | undefined): string | undefined {
  if (header === undefined || header.length < 7) return undefined;
  const space = header.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (value === '') return undefined;
  if (scheme === 'bearer') return value;
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    const token = decoded.slice(colon + 1);
    return token === '' ? undefined : token;
  }
  return undefined;
}

/** The challenge sent with every 401, so git, curl and OCI clients know to send Basic. */
export const WWW_AUTHENTICATE = 'Basic realm="connectors-proxy", charset="UTF-8"';
