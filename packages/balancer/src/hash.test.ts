import { describe, expect, it } from "vitest";
import { mulberry32, murmur3 } from "./index.js";

/** Reference murmur3_x86_32 over bytes, written plainly. */
function murmurBytes(bytes: Uint8Array, seed: number): number {
  let h = seed | 0;
  const n = bytes.length;
  const blocks = n - (n % 4);
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  for (let i = n - 1; i >= blocks; i--) k = (k << 8) | bytes[i]!;
  if (n % 4) {
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

describe("murmur3", () => {
  it.each([
    ["", 0, 0],
    ["", 1, 0x514e28b7],
    ["", 0xffffffff, 0x81f16f39],
    ["\0\0\0\0", 0, 0x2362f9de],
    ["aaaa", 0x9747b28c, 0x5a97808a],
    ["Hello, world!", 0x9747b28c, 0x24884cba],
    ["The quick brown fox jumps over the lazy dog", 0x9747b28c, 0x2fa826cd],
    ["ππππππππ", 0x9747b28c, 0xd58063c1],
    ["hello", 0, 0x248bfa47],
  ])("matches the published vector for %j seed %d", (s, seed, want) => {
    expect(murmur3(s, seed)).toBe(want);
  });

  it("hashes the UTF-8 bytes exactly as TextEncoder encodes them (incl. surrogates)", () => {
    const rnd = mulberry32(7);
    const enc = new TextEncoder();
    const alphabet = [
      "a",
      "Z",
      "0",
      ":",
      "é",
      "π",
      "中",
      "😀",
      "\ud800",
      "\udfff",
      "\u0000",
      "\u07ff",
      "\uffff",
    ];
    for (let i = 0; i < 2000; i++) {
      let s = "";
      const len = Math.floor(rnd() * 20);
      for (let j = 0; j < len; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      const seed = Math.floor(rnd() * 2 ** 32);
      expect(murmur3(s, seed)).toBe(murmurBytes(enc.encode(s), seed));
    }
  });
});

describe("mulberry32", () => {
  it("is deterministic per seed, in [0, 1), and spreads evenly", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(xs);
    const r = mulberry32(1);
    const buckets = new Array(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = r();
      if (!(x >= 0 && x < 1)) outside++;
      else buckets[Math.floor(x * 10)]++;
    }
    expect(outside).toBe(0);
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });
});
