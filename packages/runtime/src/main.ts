import { errorMessage, isKproxyError } from "@kproxy/core";

/**
 * Runs an app's main function: on failure prints `error: <message>` to stderr (never a stack) and
 * exits with the error's `details.exitCode` (default 1); a resolved number becomes the exit code.
 */
export function runMain(main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      if (typeof code === "number") process.exitCode = code;
    },
    (err: unknown) => {
      const exitCode =
        isKproxyError(err) && typeof err.details?.exitCode === "number"
          ? (err.details.exitCode as number)
          : 1;
      const hint = isKproxyError(err) && typeof err.details?.hint === "string" ? `\n${err.details.hint}` : "";
      process.stderr.write(`error: ${errorMessage(err)}${hint}\n`);
      process.exit(exitCode);
    },
  );
}

/**
 * Calls `onSignal` once on the first SIGINT or SIGTERM; a second signal exits at once with 130/143.
 * Returns a function that removes the handlers.
 */
export function onShutdownSignal(onSignal: (signal: NodeJS.Signals) => void): () => void {
  let seen = false;
  const handler = (signal: NodeJS.Signals) => {
    if (seen) process.exit(signal === "SIGINT" ? 130 : 143);
    seen = true;
    onSignal(signal);
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}
