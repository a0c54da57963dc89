// The Location of the guard's own redirects (the link -> cookie reload, the login page's return address): always
// a path on the request's own origin. A request target is whatever the client sent; `//evil.example/` or
// `/\evil.example` copied into a Location would be read by a browser as another host (the WHATWG URL parser treats
// `\` as `/` in http(s) URLs and drops tabs and newlines anywhere), which makes the gateway an open redirect.
//
// The link's redirect stays relative (path-absolute): the browser keeps the scheme and host it used, which the
// gateway cannot always know (a TLS proxy in front that is not among TRUSTED_PROXIES would turn an absolute URL
// into an https -> http downgrade). The login page needs an absolute return address; it is built from the same
// path and the request's own host.

/** An origin no request can have, to check what a browser would make of a path. */
const PROBE_ORIGIN = 'http://origin.invalid';

/** Leading characters a URL parser may read as the start of an authority (slashes, backslashes) or drop. */
const LEADING = /^[/\\\x00-\x20\x7f]+/;

/** An absolute-form request target (RFC 9112 3.2.2): only its path and query are a place on this origin. */
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

function originForm(target: string): string {
  if (!ABSOLUTE_FORM.test(target)) return target;
  try {
    const url = new URL(target);
    return `${url.pathname}${url.search}`;
  } catch {
    return '/';
  }
}

function percentEncodeOctet(c: string): string {
  const code = c.charCodeAt(0);
  return code < 0x100 ? `%${code.toString(16).toUpperCase().padStart(2, '0')}` : encodeURIComponent(c);
}

/**
 * A path-absolute reference that resolves to `target`'s path and query on the origin of the request (an
 * absolute-form target contributes its path and query only, never its authority): every leading slash,
 * backslash, control character or space becomes one `/`, and any octet a header value cannot carry is
 * percent-encoded. Anything else (the rest of the path, the query) is kept byte for byte.
 */
export function sameOriginPath(target: string): string {
  const path = `/${originForm(target).replace(LEADING, '').replace(/[^\x21-\x7e]/g, percentEncodeOctet)}`;
  // Belt and braces: what a browser resolves it to must still be on the request's origin.
  try {
    if (new URL(path, PROBE_ORIGIN).origin === PROBE_ORIGIN) return path;
  } catch {
    // unparseable: the site's root is the safe answer
  }
  return '/';
}

/** The absolute URL of `target` on `scheme://host` (host as validated by the router). */
export function sameOriginUrl(scheme: 'http' | 'https', host: string, target: string): string {
  return `${scheme}://${host}${sameOriginPath(target)}`;
}
