import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // integration tests run a real HTTPS API server and informers: be generous on a loaded CI machine
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
