// One call to an admin API (the orchestrator's or the gateway's): bearer token, JSON in and out, and the API's
// {"error":{"code","message","field"?}} answer turned into an ApiError the CLI prints and exits non-zero with.
import type { Target } from './settings.ts';

/** Calls that are not certificate issuance answer within seconds; this only bounds a hung server. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** The API could not be reached, or answered something that is not the API's JSON. */
export class TransportError extends Error {}

/** The API took longer than the call allows. */
export class RequestTimeoutError extends TransportError {}

interface ErrorBody {
  error?: { code?: unknown; message?: unknown; field?: unknown };
}

export class ApiClient {
  private readonly target: Target;
  private readonly name: string;
  private readonly hint: string;

  /** `name` says which API in messages ("orchestrator admin", "gateway admin"), `hint` which setting points at it. */
  constructor(target: Target, name: string, hint: string) {
    this.target = target;
    this.name = name;
    this.hint = hint;
  }

  get baseUrl(): string {
    return this.target.url;
  }

  async call<T = unknown>(method: string, path: string, body?: unknown, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<T> {
    const url = `${this.target.url}${path}`;
    // Both APIs take changes only as JSON, bodiless ones included.
    const headers: Record<string, string> = { authorization: `Bearer ${this.target.token}`, accept: 'application/json' };
    if (method !== 'GET') headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        // The APIs never redirect; following one could carry the token somewhere else.
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        throw new RequestTimeoutError(`the ${this.name} API at ${this.target.url} did not answer within ${Math.round(timeoutMs / 1000)} s`);
      }
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const detail = cause?.code ?? cause?.message ?? (err as Error).message;
      throw new TransportError(`cannot reach the ${this.name} API at ${this.target.url}: ${detail} (set ${this.hint})`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new TransportError(`the ${this.name} API at ${this.target.url} answered HTTP ${res.status} with something that is not JSON (is ${this.hint} right?)`);
    }
    if (!res.ok) {
      const e = (json as ErrorBody | undefined)?.error;
      const message = typeof e?.message === 'string' ? e.message : `HTTP ${res.status}`;
      const code = typeof e?.code === 'string' ? e.code : `http_${res.status}`;
      throw new ApiError(res.status, code, message, typeof e?.field === 'string' ? e.field : undefined);
    }
    return json as T;
  }
}
