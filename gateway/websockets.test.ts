// FrameBoundary against frames of every length encoding (7-bit, 16-bit, 64-bit), masked and not, cut into
// chunks at every offset: it must know exactly where each frame ends, whatever the chunking.
import { describe, expect, it } from 'vitest';
import { closeFrame, FrameBoundary } from './websockets.ts';

/** One binary frame with `length` payload bytes (RFC 6455 5.2). */
function frame(length: number, masked: boolean): Buffer {
  const ext = length < 126 ? Buffer.alloc(0) : length < 65536 ? Buffer.alloc(2) : Buffer.alloc(8);
  const len7 = length < 126 ? length : length < 65536 ? 126 : 127;
  if (len7 === 126) ext.writeUInt16BE(length);
  if (len7 === 127) ext.writeBigUInt64BE(BigInt(length));
  const mask = masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0x82, (masked ? 0x80 : 0) | len7]), ext, mask, Buffer.alloc(length, 7)]);
}

describe('FrameBoundary', () => {
  it('finds the end of every frame, however the bytes are chunked', () => {
    // Byte by byte (and in small pieces) through frames of every header form; in large chunks through long ones.
    const cases = [
      { lengths: [0, 1, 125, 126, 300, 65536], sizes: [1, 3, 7] },
      { lengths: [0, 125, 65535, 65536, 200_000], sizes: [1000, 65537] },
    ];
    for (const masked of [false, true]) {
      for (const { lengths, sizes } of cases) {
        const frames = lengths.map((n) => frame(n, masked));
        const stream = Buffer.concat(frames);
        const ends = new Set<number>();
        let at = 0;
        for (const f of frames) ends.add((at += f.length));
        for (const size of sizes) {
          const tracker = new FrameBoundary();
          for (let offset = 0; offset < stream.length; offset += size) {
            const chunk = stream.subarray(offset, offset + size);
            tracker.advance(chunk);
            const end = offset + chunk.length;
            // Cut byte by byte, the tracker is at a boundary exactly at the frames' ends.
            if (size === 1 && tracker.atBoundary !== ends.has(end)) throw new Error(`masked=${masked}: wrong at byte ${end}`);
            if (ends.has(end)) expect(tracker.atBoundary).toBe(true);
          }
          expect(tracker.atBoundary).toBe(true);
        }
      }
    }
  });

  it('with stopAtBoundary, takes exactly the rest of the frame under way', () => {
    const tracker = new FrameBoundary();
    const big = frame(70_000, true);
    const next = frame(10, true);
    expect(tracker.advance(big.subarray(0, 5000))).toBe(5000);
    expect(tracker.atBoundary).toBe(false);
    const rest = Buffer.concat([big.subarray(5000), next]);
    expect(tracker.advance(rest, true)).toBe(big.length - 5000);
    expect(tracker.atBoundary).toBe(true);
    // At a boundary already: nothing to take.
    expect(tracker.advance(next, true)).toBe(0);
  });

  it('reads the close frames it writes itself as whole frames', () => {
    for (const masked of [false, true]) {
      const tracker = new FrameBoundary();
      tracker.advance(closeFrame(1001, masked));
      expect(tracker.atBoundary).toBe(true);
    }
  });
});
