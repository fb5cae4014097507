/** ClusterIP allocation from a service CIDR and NodePort allocation from a port range. */
import { KproxyError } from "@kproxy/core";

function ipToInt(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

function intToIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** Allocates IPv4 addresses from a CIDR, skipping the network and broadcast addresses. */
export class IpAllocator {
  readonly cidr: string;
  private readonly base: number;
  private readonly size: number;
  private readonly used = new Set<number>();
  private next = 0;

  constructor(cidr: string) {
    const m = cidr.match(/^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/);
    const base = m ? ipToInt(m[1]!) : undefined;
    const bits = m ? Number(m[2]) : Number.NaN;
    if (base === undefined || !(bits >= 8 && bits <= 30))
      throw new KproxyError("TESTKIT_BAD_CIDR", `invalid IPv4 CIDR "${cidr}" (prefix must be /8 to /30)`);
    this.cidr = cidr;
    this.size = 2 ** (32 - bits);
    this.base = base - (base % this.size);
  }

  /** The first usable address (the real server gives it to the "kubernetes" service). */
  first(): string {
    return intToIp(this.base + 1);
  }

  contains(ip: string): boolean {
    const n = ipToInt(ip);
    return n !== undefined && n > this.base && n < this.base + this.size - 1;
  }

  isAllocated(ip: string): boolean {
    const n = ipToInt(ip);
    return n !== undefined && this.used.has(n);
  }

  /** Reserve a specific address; false when taken or out of range. */
  allocateSpecific(ip: string): boolean {
    const n = ipToInt(ip);
    if (n === undefined || !this.contains(ip) || this.used.has(n)) return false;
    this.used.add(n);
    return true;
  }

  /** The next free address, or undefined when the range is full. */
  allocateNext(): string | undefined {
    const usable = this.size - 2;
    for (let i = 0; i < usable; i++) {
      const off = ((this.next + i) % usable) + 1;
      const n = this.base + off;
      if (!this.used.has(n)) {
        this.used.add(n);
        this.next = off % usable;
        return intToIp(n);
      }
    }
    return undefined;
  }

  release(ip: string): void {
    const n = ipToInt(ip);
    if (n !== undefined) this.used.delete(n);
  }
}

/** Allocates ports from an inclusive range. */
export class PortAllocator {
  readonly min: number;
  readonly max: number;
  private readonly used = new Set<number>();
  private next: number;

  constructor(range: readonly [number, number]) {
    const [min, max] = range;
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 65535 || min > max)
      throw new KproxyError("TESTKIT_BAD_PORT_RANGE", `invalid port range ${min}-${max}`);
    this.min = min;
    this.max = max;
    this.next = min;
  }

  contains(port: number): boolean {
    return Number.isInteger(port) && port >= this.min && port <= this.max;
  }

  allocateSpecific(port: number): boolean {
    if (!this.contains(port) || this.used.has(port)) return false;
    this.used.add(port);
    return true;
  }

  allocateNext(): number | undefined {
    const count = this.max - this.min + 1;
    for (let i = 0; i < count; i++) {
      const p = this.min + ((this.next - this.min + i) % count);
      if (!this.used.has(p)) {
        this.used.add(p);
        this.next = p + 1 > this.max ? this.min : p + 1;
        return p;
      }
    }
    return undefined;
  }

  release(port: number): void {
    this.used.delete(port);
  }
}
