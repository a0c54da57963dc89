import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { isPortBindable, MemoryPortAllocator } from './port-allocator.ts';
import { runPortAllocatorContract } from './port-allocator.contract.ts';

runPortAllocatorContract('memory', async (range) => new MemoryPortAllocator(range));

describe('isPortBindable', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('says no for a port something listens on, yes once it is gone', async () => {
    server = createServer();
    await new Promise<void>((r) => server!.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (server.address() as { port: number }).port;
    expect(await isPortBindable('127.0.0.1', port)).toBe(false);
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    expect(await isPortBindable('127.0.0.1', port)).toBe(true);
  });
});
