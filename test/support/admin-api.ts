// One call to an orchestrator's admin API, as an admin makes it: bearer token, JSON in and out.

export interface ApiAnswer {
  status: number;
  json: any;
}

export async function adminCall(port: number, token: string, method: string, path: string, body?: unknown): Promise<ApiAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}
