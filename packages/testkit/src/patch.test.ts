import { describe, expect, it } from "vitest";
import { applyJsonPatch, applyMergePatch, applyStrategicMergePatch } from "./patch.js";

describe("JSON merge patch", () => {
  it("merges maps, deletes with null, replaces lists", () => {
    expect(applyMergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { b: null, d: 3 }, l: [3] })).toEqual({
      a: { c: 2, d: 3 },
      l: [3],
    });
  });
});

describe("JSON patch", () => {
  it("applies add/remove/replace/move/copy/test", () => {
    const doc = { a: [1, 2], b: { c: 1 } };
    expect(
      applyJsonPatch(doc, [
        { op: "add", path: "/a/-", value: 3 },
        { op: "remove", path: "/a/0" },
        { op: "replace", path: "/b/c", value: 2 },
        { op: "copy", from: "/b", path: "/d" },
        { op: "move", from: "/d/c", path: "/e" },
        { op: "test", path: "/e", value: 2 },
      ]),
    ).toEqual({ a: [2, 3], b: { c: 2 }, d: {}, e: 2 });
    expect(doc).toEqual({ a: [1, 2], b: { c: 1 } });
  });
  it("fails with 422 on a failed test or missing path, 400 on a non-array", () => {
    expect(() => applyJsonPatch({ a: 1 }, [{ op: "test", path: "/a", value: 2 }])).toThrow(
      expect.objectContaining({ code: 422 }),
    );
    expect(() => applyJsonPatch({}, [{ op: "remove", path: "/x" }])).toThrow(
      expect.objectContaining({ code: 422 }),
    );
    expect(() => applyJsonPatch({}, { op: "add" })).toThrow(expect.objectContaining({ code: 400 }));
  });
});

describe("strategic merge patch", () => {
  const pod = {
    metadata: { finalizers: ["a"] },
    spec: {
      containers: [
        { name: "a", image: "1", env: [{ name: "X", value: "1" }] },
        { name: "b", image: "1" },
      ],
      tolerations: [{ key: "t" }],
    },
  };
  it("merges lists by merge key, supports $patch delete/replace and $setElementOrder", () => {
    const out = applyStrategicMergePatch(
      pod,
      {
        metadata: { finalizers: ["b"] },
        spec: {
          "$setElementOrder/containers": [{ name: "b" }, { name: "a" }],
          containers: [
            { name: "a", env: [{ name: "Y", value: "2" }] },
            { name: "b", $patch: "delete" },
            { name: "c", image: "2" },
          ],
          tolerations: [{ key: "u" }],
        },
      },
      "Pod",
    ) as any;
    expect(out.metadata.finalizers).toEqual(["a", "b"]);
    expect(out.spec.containers.map((c: any) => c.name)).toEqual(["a", "c"]);
    expect(out.spec.containers[0].env).toEqual([
      { name: "X", value: "1" },
      { name: "Y", value: "2" },
    ]);
    expect(out.spec.tolerations).toEqual([{ key: "u" }]);
    const replaced = applyStrategicMergePatch(
      pod,
      { spec: { $patch: "replace", containers: [] } },
      "Pod",
    ) as any;
    expect(replaced.spec).toEqual({ containers: [] });
  });
  it("merges Service ports by port and deletes with $patch", () => {
    const svc = {
      spec: {
        ports: [
          { port: 80, name: "a" },
          { port: 81, name: "b" },
        ],
      },
    };
    const out = applyStrategicMergePatch(
      svc,
      {
        spec: {
          ports: [
            { port: 81, $patch: "delete" },
            { port: 80, name: "http" },
          ],
        },
      },
      "Service",
    ) as any;
    expect(out.spec.ports).toEqual([{ port: 80, name: "http" }]);
  });
});
