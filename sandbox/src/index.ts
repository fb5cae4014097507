export type { Sandbox, SandboxOptions } from "./sandbox.js";
export { startSandbox, WORKLOADS } from "./sandbox.js";
