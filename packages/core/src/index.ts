export type { Clock, Timer } from "./clock.js";
export { ManualClock, systemClock } from "./clock.js";
export { errorMessage, isKproxyError, KproxyError } from "./errors.js";
export type { FlagSpec, FlagType, FlagValue, FlagValues } from "./flags.js";
export type { ConsoleLoggerOptions, LogFields, Logger, LogLevel } from "./logger.js";
export { createLogger, silentLogger } from "./logger.js";
export { redactFields, redactHeaders, redactQuery, SECRET_HEADERS } from "./redact.js";
export type {
  AddressType,
  Endpoint,
  EndpointSet,
  EndpointTargetRef,
  Protocol,
  ServicePortName,
} from "./vocabulary.js";
