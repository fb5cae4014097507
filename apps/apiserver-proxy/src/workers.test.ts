import { describe, expect, it } from "vitest";
import { labelExposition, mergeExpositions } from "./workers.js";

describe("--workers metrics", () => {
  it("labels every sample with its worker and merges the expositions metric by metric", () => {
    const a = '# HELP r Requests.\n# TYPE r counter\nr{code="200"} 3\n# HELP g G.\n# TYPE g gauge\ng 1\n';
    const b = '# HELP r Requests.\n# TYPE r counter\nr{code="200"} 5\n# HELP g G.\n# TYPE g gauge\ng 0\n';
    expect(mergeExpositions([labelExposition(a, "0"), labelExposition(b, "1")])).toBe(
      '# HELP r Requests.\n# TYPE r counter\nr{worker="0",code="200"} 3\nr{worker="1",code="200"} 5\n# HELP g G.\n# TYPE g gauge\ng{worker="0"} 1\ng{worker="1"} 0\n',
    );
  });
});
