export { formatDuration, parseDuration } from "./duration.js";
export { formatFlagHelp, parseFlags } from "./flags.js";
export { onShutdownSignal, runMain } from "./main.js";
