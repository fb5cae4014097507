/**
 * MurmurHash3 (x86, 32-bit) of a string's UTF-8 bytes, computed from `charCodeAt` without
 * allocating: equal to murmur3_32(new TextEncoder().encode(str), seed). Lone surrogates are
 * hashed as U+FFFD, as TextEncoder encodes them.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

// Streaming state. Hashing is synchronous and never re-entered, so module-level state is safe and
// saves the allocation of a state object per call.
let h = 0;
let k = 0;
let count = 0;

function put(byte: number): void {
  k |= byte << ((count & 3) << 3);
  count++;
  if ((count & 3) === 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
    k = 0;
  }
}

function putCodePoint(cp: number): void {
  if (cp < 0x80) put(cp);
  else if (cp < 0x800) {
    put(0xc0 | (cp >>> 6));
    put(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    put(0xe0 | (cp >>> 12));
    put(0x80 | ((cp >>> 6) & 0x3f));
    put(0x80 | (cp & 0x3f));
  } else {
    put(0xf0 | (cp >>> 18));
    put(0x80 | ((cp >>> 12) & 0x3f));
    put(0x80 | ((cp >>> 6) & 0x3f));
    put(0x80 | (cp & 0x3f));
  }
}

/** MurmurHash3 x86_32 of the UTF-8 encoding of `str`, as an unsigned 32-bit integer. */
export function murmur3(str: string, seed = 0): number {
  h = seed | 0;
  k = 0;
  count = 0;
  const n = str.length;
  for (let i = 0; i < n; i++) {
    const c = str.charCodeAt(i);
    if (c < 0x80) {
      put(c);
    } else if (c >= 0xd800 && c <= 0xdbff) {
      const d = i + 1 < n ? str.charCodeAt(i + 1) : 0;
      if (d >= 0xdc00 && d <= 0xdfff) {
        putCodePoint(0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00));
        i++;
      } else putCodePoint(0xfffd);
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      putCodePoint(0xfffd);
    } else {
      putCodePoint(c);
    }
  }
  if ((count & 3) !== 0) {
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= count;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The hash of virtual node `v` of an endpoint whose key hashes to `base`: murmur3's finalizer over
 * base XOR (v+1)·golden ratio. Distinct for distinct v of one key, and no string is built.
 */
export function vnodeHash(base: number, v: number): number {
  let x = (base ^ Math.imul(v + 1, 0x9e3779b9)) | 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * mulberry32: a small, fast, seeded PRNG returning numbers in [0, 1). Deterministic for a seed,
 * for tests here and in other packages (inject it as a balancer's `random`).
 */
export function mulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
