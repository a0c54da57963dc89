// The CLI's settings: environment over config file over defaults, a config file readable by others refused when
// it holds a token, and plain http refused to anything but loopback unless --insecure. Real files in a temp dir.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkUrl, configPath, gatewayTarget, isLoopbackHost, orchestratorTarget, readConfigFile, SettingsError } from './settings.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'podgate-settings-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, content: unknown, mode: number): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  chmodSync(path, mode);
  return path;
}

const TOKEN = 'settings-token-0123456789abcdef';

describe('config file', () => {
  it('lives under XDG_CONFIG_HOME, else ~/.config', () => {
    expect(configPath({ HOME: '/home/a' })).toBe('/home/a/.config/podgate/config.json');
    expect(configPath({ HOME: '/home/a', XDG_CONFIG_HOME: '/x' })).toBe('/x/podgate/config.json');
  });

  it('is read when only its owner can read it; a missing file is no file', () => {
    const path = configFile('ok.json', { url: 'https://orch.example.com', token: TOKEN }, 0o600);
    const file = readConfigFile(path);
    expect(orchestratorTarget({}, file, false)).toEqual({ url: 'https://orch.example.com', token: TOKEN });
    expect(readConfigFile(join(dir, 'absent.json'))).toBeUndefined();
  });

  it('refuses a file holding a token that group or others may read, saying why and how to fix it', () => {
    for (const mode of [0o640, 0o604, 0o644]) {
      const path = configFile(`open-${mode.toString(8)}.json`, { gatewayToken: TOKEN }, mode);
      expect(() => readConfigFile(path)).toThrow(SettingsError);
      expect(() => readConfigFile(path)).toThrow(new RegExp(`holds a token and is accessible to other users \\(mode ${mode.toString(8)}\\).*chmod 600`));
    }
    // Without a token it may be read by anyone, but not written by anyone.
    expect(readConfigFile(configFile('public.json', { url: 'https://a.example.com' }, 0o644))?.config).toEqual({ url: 'https://a.example.com' });
    expect(() => readConfigFile(configFile('writable.json', { url: 'https://a.example.com' }, 0o666))).toThrow(/writable by other users/);
  });

  it('names an unknown key or bad JSON', () => {
    expect(() => readConfigFile(configFile('typo.json', { tokn: TOKEN }, 0o600))).toThrow(/tokn/);
    expect(() => readConfigFile(configFile('bad.json', '{url:', 0o600))).toThrow(/not valid JSON/);
  });
});

describe('targets', () => {
  const file = { path: '/cfg.json', config: { url: 'https://file.example.com', token: 'file-token-0123456789', gatewayToken: 'gw-file-token-0123456789' } };

  it('takes the environment over the file, and defaults to loopback', () => {
    expect(orchestratorTarget({ PODGATE_URL: 'http://127.0.0.1:1234/', PODGATE_TOKEN: TOKEN }, file, false)).toEqual({ url: 'http://127.0.0.1:1234', token: TOKEN });
    expect(orchestratorTarget({ PODGATE_TOKEN: TOKEN }, undefined, false).url).toBe('http://127.0.0.1:8090');
    expect(gatewayTarget({}, file, false)).toEqual({ url: 'http://127.0.0.1:9090', token: 'gw-file-token-0123456789' });
    // The gateway's own variables, as `npm run certs` took them.
    expect(gatewayTarget({ ADMIN_PORT: '9191', GATEWAY_ADMIN_TOKEN: TOKEN }, undefined, false)).toEqual({ url: 'http://127.0.0.1:9191', token: TOKEN });
    expect(gatewayTarget({ ADMIN_URL: 'http://[::1]:9000', ADMIN_TOKEN: TOKEN }, undefined, false).url).toBe('http://[::1]:9000');
  });

  it('asks for a token by its variable', () => {
    expect(() => orchestratorTarget({}, { path: '/cfg.json', config: {} }, false)).toThrow(/PODGATE_TOKEN.*\/cfg\.json/);
    expect(() => gatewayTarget({}, undefined, false)).toThrow(/PODGATE_GATEWAY_TOKEN/);
  });

  it('refuses http:// to a host that is not loopback unless insecure, naming the setting', () => {
    expect(() => orchestratorTarget({ PODGATE_URL: 'http://10.1.2.3:8090', PODGATE_TOKEN: TOKEN }, undefined, false)).toThrow(/^PODGATE_URL: http:\/\/ to 10\.1\.2\.3 would send the admin token in clear text/);
    expect(() => orchestratorTarget({ PODGATE_TOKEN: TOKEN }, { path: '/cfg.json', config: { url: 'http://orch.example.com' } }, false)).toThrow(/^\/cfg\.json: url: /);
    expect(orchestratorTarget({ PODGATE_URL: 'http://10.1.2.3:8090', PODGATE_TOKEN: TOKEN }, undefined, true).url).toBe('http://10.1.2.3:8090');
    expect(orchestratorTarget({ PODGATE_URL: 'https://10.1.2.3:8090', PODGATE_TOKEN: TOKEN }, undefined, false).url).toBe('https://10.1.2.3:8090');
  });

  it('refuses URLs that are not plain http(s) bases', () => {
    expect(() => checkUrl('ftp://127.0.0.1', 'X', false)).toThrow(/^X: must be an http/);
    expect(() => checkUrl('http://u:p@127.0.0.1', 'X', false)).toThrow(/credentials/);
    expect(() => checkUrl('http://127.0.0.1/?a=1', 'X', false)).toThrow(/query/);
    expect(() => checkUrl('127.0.0.1:8090', 'X', false)).toThrow(/X: /);
    expect(checkUrl('https://proxy.example.com/podgate/', 'X', false)).toBe('https://proxy.example.com/podgate');
  });

  it('knows loopback', () => {
    for (const h of ['127.0.0.1', '127.9.8.7', 'localhost', 'LOCALHOST', '[::1]', '::1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['10.0.0.1', 'example.com', 'localhost.example.com', '[::2]', '128.0.0.1', '0.0.0.0']) expect(isLoopbackHost(h), h).toBe(false);
  });
});
