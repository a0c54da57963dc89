// The one log line of a request, and its metrics. The access line carries the reason when the pod failed (`err`:
// the answer's code, `reason`: what happened), so a dead pod under load adds no second line per request. With
// ACCESS_LOG off, failures are logged at debug only; podgate_http_requests_total counts them either way. Tokens
// never reach the log: the path and host go through the access redaction (a refused or redirected request still
// carries the client's token).
import type { IncomingMessage } from 'node:http';
import type { PodgateError } from '../shared/errors.ts';
import { infoLineWriter, type Logger } from '../shared/log.ts';
import { redactTarget, redactTokens } from './access/credentials.ts';
import type { GatewayConfig } from './config.ts';
import type { GatewayMetrics } from './metrics.ts';

/** Status recorded for requests whose client went away before the answer was complete (nginx's convention). */
export const CLIENT_CLOSED = 499;

export type RecordRequest = (req: IncomingMessage, status: number, pod: string, started: number, failure?: PodgateError) => void;

export function createRequestLog(config: Pick<GatewayConfig, 'ACCESS_LOG'>, metrics: GatewayMetrics, log: Logger): RecordRequest {
  const writeLine = config.ACCESS_LOG ? infoLineWriter(log) : undefined;
  return (req, status, pod, started, failure) => {
    const seconds = (performance.now() - started) / 1000;
    metrics.requests.record(status, pod, seconds);
    if (!config.ACCESS_LOG && !failure) return;
    const host = req.headers.host === undefined ? undefined : redactTokens(req.headers.host);
    const path = req.url === undefined ? undefined : redactTarget(req.url).slice(0, 200);
    const ms = Math.round(seconds * 1000);
    if (!failure && writeLine) {
      writeLine(accessFields(req.method, host, path, status, pod, ms), 'request');
      return;
    }
    const line = { method: req.method, host, path, status, pod, ms };
    if (!failure) log.info(line, 'request');
    else if (config.ACCESS_LOG) log.info({ ...line, err: failure.code, reason: failure.message }, 'request');
    else log.debug({ ...line, err: failure.code, reason: failure.message }, 'upstream error');
  };
}

/**
 * An access line's fields as pino writes them (an undefined one left out), serialised here: one line per request is
 * the one log line the gateway writes at load. The client's host and path are JSON strings like any other value.
 */
export function accessFields(method: string | undefined, host: string | undefined, path: string | undefined, status: number, pod: string, ms: number): string {
  const m = method === undefined ? '' : `,"method":${JSON.stringify(method)}`;
  const h = host === undefined ? '' : `,"host":${JSON.stringify(host)}`;
  const p = path === undefined ? '' : `,"path":${JSON.stringify(path)}`;
  return `${m}${h}${p},"status":${status},"pod":${JSON.stringify(pod)},"ms":${ms}`;
}
