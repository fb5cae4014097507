/**
 * Decoding of Kubernetes protobuf request bodies ("k8s\0" + runtime.Unknown) for the kinds that
 * kubectl's typed `create namespace|configmap|service` sub-commands send. Responses are always JSON.
 */
import { ApiError } from "./status.js";

type FieldType = "string" | "int" | "bool" | "bytes" | "message" | "map" | "mapBytes" | "intOrString";

interface Field {
  name: string;
  type: FieldType;
  repeated?: boolean;
  /** Pointer fields in Go: a zero value that is present is kept. */
  keepZero?: boolean;
  schema?: Schema;
}

type Schema = Record<number, Field>;

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw malformed("truncated varint");
      const b = this.buf[this.pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw malformed("varint too long");
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    if (len < 0 || this.pos + len > this.buf.length) throw malformed("truncated field");
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw malformed(`unsupported wire type ${wire}`);
    if (this.pos > this.buf.length) throw malformed("truncated field");
  }
}

function malformed(why: string): ApiError {
  return new ApiError(400, "BadRequest", `the protobuf body of the request is malformed: ${why}`);
}

function isZero(v: unknown): boolean {
  if (v === "" || v === 0 || v === false || v === undefined) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object" && v !== null) return Object.keys(v).length === 0;
  return false;
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const r = new Reader(buf);
  const out: Record<string, unknown> = {};
  while (!r.done) {
    const tag = Number(r.varint());
    const num = tag >>> 3;
    const wire = tag & 7;
    const f = schema[num];
    if (!f) {
      r.skip(wire);
      continue;
    }
    let value: unknown;
    switch (f.type) {
      case "string":
        value = r.bytes().toString("utf8");
        break;
      case "bytes":
        value = r.bytes().toString("base64");
        break;
      case "int":
        value = Number(BigInt.asIntN(64, r.varint()));
        break;
      case "bool":
        value = r.varint() !== 0n;
        break;
      case "message":
        value = decodeMessage(r.bytes(), f.schema ?? {});
        break;
      case "intOrString": {
        const m = decodeMessage(r.bytes(), {
          1: { name: "type", type: "int" },
          2: { name: "intVal", type: "int" },
          3: { name: "strVal", type: "string" },
        });
        value = m.type === 1 ? (m.strVal ?? "") : (m.intVal ?? 0);
        break;
      }
      case "map":
      case "mapBytes": {
        const entry = decodeMessage(r.bytes(), {
          1: { name: "key", type: "string", keepZero: true },
          2: { name: "value", type: f.type === "map" ? "string" : "bytes", keepZero: true },
        });
        const m = (out[f.name] as Record<string, unknown> | undefined) ?? {};
        m[String(entry.key ?? "")] = entry.value ?? "";
        out[f.name] = m;
        continue;
      }
    }
    if (f.repeated) {
      const list = (out[f.name] as unknown[] | undefined) ?? [];
      list.push(value);
      out[f.name] = list;
    } else if (f.keepZero || !isZero(value)) out[f.name] = value;
  }
  return out;
}

const s = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: "string", ...extra });
const TIME: Schema = { 1: { name: "seconds", type: "int" }, 2: { name: "nanos", type: "int" } };

const OBJECT_META: Schema = {
  1: s("name"),
  2: s("generateName"),
  3: s("namespace"),
  5: s("uid"),
  6: s("resourceVersion"),
  7: { name: "generation", type: "int" },
  8: { name: "creationTimestamp", type: "message", schema: TIME },
  11: { name: "labels", type: "map" },
  12: { name: "annotations", type: "map" },
  13: {
    name: "ownerReferences",
    type: "message",
    repeated: true,
    schema: {
      1: s("kind"),
      3: s("name"),
      4: s("uid"),
      5: s("apiVersion"),
      6: { name: "controller", type: "bool", keepZero: true },
      7: { name: "blockOwnerDeletion", type: "bool", keepZero: true },
    },
  },
  14: s("finalizers", { repeated: true }),
};

const SERVICE_PORT: Schema = {
  1: s("name"),
  2: s("protocol"),
  3: { name: "port", type: "int" },
  4: { name: "targetPort", type: "intOrString" },
  5: { name: "nodePort", type: "int" },
  6: s("appProtocol"),
};

const KINDS: Record<string, Schema> = {
  SelfSubjectAccessReview: {
    1: { name: "metadata", type: "message", schema: OBJECT_META },
    2: {
      name: "spec",
      type: "message",
      schema: {
        1: {
          name: "resourceAttributes",
          type: "message",
          schema: {
            1: s("namespace"),
            2: s("verb"),
            3: s("group"),
            4: s("version"),
            5: s("resource"),
            6: s("subresource"),
            7: s("name"),
          },
        },
        2: { name: "nonResourceAttributes", type: "message", schema: { 1: s("path"), 2: s("verb") } },
      },
    },
  },
  SelfSubjectReview: { 1: { name: "metadata", type: "message", schema: OBJECT_META } },
  Namespace: {
    1: { name: "metadata", type: "message", schema: OBJECT_META },
    2: { name: "spec", type: "message", schema: { 1: s("finalizers", { repeated: true }) } },
  },
  ConfigMap: {
    1: { name: "metadata", type: "message", schema: OBJECT_META },
    2: { name: "data", type: "map" },
    3: { name: "binaryData", type: "mapBytes" },
    4: { name: "immutable", type: "bool", keepZero: true },
  },
  Service: {
    1: { name: "metadata", type: "message", schema: OBJECT_META },
    2: {
      name: "spec",
      type: "message",
      schema: {
        1: { name: "ports", type: "message", repeated: true, schema: SERVICE_PORT },
        2: { name: "selector", type: "map" },
        3: s("clusterIP"),
        4: s("type"),
        5: s("externalIPs", { repeated: true }),
        7: s("sessionAffinity"),
        8: s("loadBalancerIP"),
        9: s("loadBalancerSourceRanges", { repeated: true }),
        10: s("externalName"),
        11: s("externalTrafficPolicy"),
        12: { name: "healthCheckNodePort", type: "int" },
        13: { name: "publishNotReadyAddresses", type: "bool" },
        17: s("ipFamilyPolicy"),
        18: s("clusterIPs", { repeated: true }),
        19: s("ipFamilies", { repeated: true }),
        20: { name: "allocateLoadBalancerNodePorts", type: "bool", keepZero: true },
        21: s("loadBalancerClass"),
        22: s("internalTrafficPolicy"),
        23: s("trafficDistribution"),
      },
    },
  },
};

/** Decode a Kubernetes protobuf body into the JSON form of the object. */
export function decodeKubernetesProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < 4 || !body.subarray(0, 4).equals(MAGIC))
    throw malformed("missing the k8s protobuf prefix");
  const unknown = decodeMessage(body.subarray(4), {
    1: { name: "typeMeta", type: "message", schema: { 1: s("apiVersion"), 2: s("kind") } },
    2: { name: "raw", type: "bytes" },
  });
  const tm = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const schema = tm.kind ? KINDS[tm.kind] : undefined;
  if (!schema)
    throw new ApiError(
      415,
      "UnsupportedMediaType",
      `protobuf bodies are only accepted for ${Object.keys(KINDS).join(", ")}; send application/json`,
    );
  const raw = Buffer.from(String(unknown.raw ?? ""), "base64");
  const obj = decodeMessage(raw, schema);
  const meta = (obj.metadata ?? {}) as Record<string, unknown>;
  // Timestamps are server-owned; drop the protobuf shape rather than translate it.
  delete meta.creationTimestamp;
  return { apiVersion: tm.apiVersion, kind: tm.kind, ...obj, metadata: meta };
}
