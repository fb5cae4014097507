import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // exec plugins are real node processes and certificates come from openssl: be generous on a loaded CI
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
