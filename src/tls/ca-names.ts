// Names shared by the CLI flags and the proxy CA module (kept apart so parsing flags does
// not load the X.509 library).

/** Default name of the proxy CA's `kubernetes.io/tls` Secret in the proxy's namespace. */
export const DEFAULT_CA_SECRET = 'connectors-proxy-ca';
/** Generated folder CA: key and certificate in one file, so it appears whole or not at all. */
export const CA_BUNDLE_FILE = 'proxy-ca.pem';
/** The certificate alone, next to it, for clients to trust. */
export const CA_CERT_FILE = 'ca.crt';
