// Typed errors shared by the gateway and the orchestrator. Each carries a stable machine-readable `code` and
// the HTTP status it maps to; `toHttpError` is the one place that turns any thrown value into an answer.

export abstract class PodgateError extends Error {
  abstract readonly code: string;
  abstract readonly status: number;
  /** Extra headers the answer must carry (e.g. Retry-After). */
  headers(): Record<string, string> {
    return {};
  }
}

/** The Host header is not a well-formed pod hostname under one of our base domains. */
export class InvalidHostError extends PodgateError {
  readonly code = 'invalid_host';
  readonly status = 400;
  readonly host: string;
  constructor(host: string, reason: string) {
    super(`invalid pod hostname ${JSON.stringify(host.slice(0, 300))}: ${reason}`);
    this.host = host;
  }
}

/**
 * The request target is neither origin-form (`/path?query`) nor an absolute-form http(s) URL the gateway accepts
 * (RFC 9112 3.2). The message names what is wrong without echoing the target, which may carry a token.
 */
export class InvalidRequestTargetError extends PodgateError {
  readonly code = 'invalid_request_target';
  readonly status = 400;
  constructor(reason: string) {
    super(`invalid request target: ${reason}`);
  }
}

/** An upgrade the gateway does not proxy: anything but a WebSocket upgrade with GET. */
export class UnsupportedUpgradeError extends PodgateError {
  readonly code = 'unsupported_upgrade';
  readonly status = 400;
}

/** The Host is not under any base domain this gateway serves (IP literal, foreign domain). */
export class HostNotServedError extends PodgateError {
  readonly code = 'host_not_served';
  readonly status = 421;
  constructor(host: string) {
    super(`this gateway does not serve ${JSON.stringify(host.slice(0, 300))}`);
  }
}

/** No such pod. The message never says whether the slug exists elsewhere. */
export class PodNotFoundError extends PodgateError {
  readonly code = 'pod_not_found';
  readonly status = 404;
  readonly slug: string;
  constructor(slug: string) {
    super(`no pod named ${JSON.stringify(slug)}`);
    this.slug = slug;
  }
}

/** The pod exists but is stopped or still starting. */
export class PodUnavailableError extends PodgateError {
  readonly code = 'pod_unavailable';
  readonly status = 503;
  readonly slug: string;
  readonly podStatus: string;
  readonly retryAfterSeconds: number;
  constructor(slug: string, podStatus: string, retryAfterSeconds: number) {
    super(`pod ${JSON.stringify(slug)} is ${podStatus}`);
    this.slug = slug;
    this.podStatus = podStatus;
    this.retryAfterSeconds = retryAfterSeconds;
  }
  override headers(): Record<string, string> {
    return { 'retry-after': String(this.retryAfterSeconds) };
  }
}

/** The pod already has its configured maximum of concurrent connections (route `maxConnections`) through this gateway. */
export class PodBusyError extends PodgateError {
  readonly code = 'pod_busy';
  readonly status = 503;
  readonly retryAfterSeconds: number;
  constructor(maxConnections: number, retryAfterSeconds: number) {
    super(`the pod has reached its limit of ${maxConnections} concurrent connections; try again shortly`);
    this.retryAfterSeconds = retryAfterSeconds;
  }
  override headers(): Record<string, string> {
    return { 'retry-after': String(this.retryAfterSeconds) };
  }
}

/** The pod's port refused the connection, reset it, or is not listening. */
export class UpstreamUnreachableError extends PodgateError {
  readonly code = 'upstream_unreachable';
  readonly status = 502;
  constructor(detail: string) {
    super(`the pod's service is not reachable: ${detail}`);
  }
}

/** The pod's service did not connect or answer within the configured timeout. */
export class UpstreamTimeoutError extends PodgateError {
  readonly code = 'upstream_timeout';
  readonly status = 504;
  constructor(detail: string) {
    super(`the pod's service did not answer in time: ${detail}`);
  }
}

/** The pod answered with a response head the gateway does not relay (status, header or framing). */
export class UpstreamInvalidResponseError extends PodgateError {
  readonly code = 'upstream_invalid_response';
  readonly status = 502;
  constructor(detail: string) {
    super(`the pod's response is not valid HTTP: ${detail}`);
  }
}

/** A request body, spec or parameter failed validation; `field` names the culprit. */
export class ValidationError extends PodgateError {
  readonly code = 'invalid_request';
  readonly status = 400;
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

export class UnauthorizedError extends PodgateError {
  readonly code = 'unauthorized';
  readonly status = 401;
  constructor(message = 'authentication required') {
    super(message);
  }
}

/** A request body of a media type the endpoint does not take (admin APIs take application/json only). */
export class UnsupportedMediaTypeError extends PodgateError {
  readonly code = 'unsupported_media_type';
  readonly status = 415;
}

export class NotFoundError extends PodgateError {
  readonly code = 'not_found';
  readonly status = 404;
}

export class ConflictError extends PodgateError {
  readonly code = 'conflict';
  readonly status = 409;
}

export class TooManyRequestsError extends PodgateError {
  readonly code = 'too_many_requests';
  readonly status = 429;
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
  override headers(): Record<string, string> {
    return { 'retry-after': String(this.retryAfterSeconds) };
  }
}

/** A dependency (Docker, Redis, the CA) is missing or failing; the message says what to do. */
export class ServiceUnavailableError extends PodgateError {
  readonly code = 'service_unavailable';
  readonly status = 503;
}

/** Every host port of the orchestrator's range is handed out (or bound by something else). */
export class PortsExhaustedError extends PodgateError {
  readonly code = 'ports_exhausted';
  readonly status = 503;
  constructor(detail: string) {
    super(`no free host port for a pod: ${detail}`);
  }
}

/** The pod could not be created or started; what was made has been rolled back. */
export class PodStartFailedError extends PodgateError {
  readonly code = 'pod_start_failed';
  readonly status = 502;
  readonly slug: string;
  constructor(slug: string, detail: string) {
    super(`pod ${JSON.stringify(slug)} did not start: ${detail}`);
    this.slug = slug;
  }
}

/**
 * The ACME CA refused or failed an issuance (rate limit, failed validation, outage). `retryAfterSeconds` is the
 * CA's Retry-After when it gave one; `rateLimited` is true for its rateLimited problem or HTTP 429.
 */
export class CertificateAuthorityError extends PodgateError {
  readonly code = 'certificate_authority_error';
  readonly status = 502;
  readonly retryAfterSeconds: number | undefined;
  readonly rateLimited: boolean;
  constructor(message: string, options: { retryAfterSeconds?: number; rateLimited?: boolean } = {}) {
    super(message);
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.rateLimited = options.rateLimited ?? false;
  }
  override headers(): Record<string, string> {
    return this.retryAfterSeconds === undefined ? {} : { 'retry-after': String(this.retryAfterSeconds) };
  }
}

/** A process's exit code for invalid configuration: restarting it cannot help (a supervisor should not retry). */
export const EXIT_CONFIG = 2;

/** Configuration is invalid; `variable` names the setting. Thrown at start, never per request. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.variable = variable;
  }
}

export interface HttpError {
  status: number;
  code: string;
  message: string;
  headers: Record<string, string>;
}

/** The one mapping from thrown values to HTTP answers. Unknown errors become an opaque 500. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof PodgateError) {
    return { status: err.status, code: err.code, message: err.message, headers: err.headers() };
  }
  return { status: 500, code: 'internal_error', message: 'internal error', headers: {} };
}
