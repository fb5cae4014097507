/** The kinds of command-line flag, with pflag's (kubectl's) parsing rules. */
export type FlagType = "string" | "bool" | "int" | "float" | "duration" | "stringArray" | "stringSlice";

/** A parsed flag value: strings, booleans, numbers (durations in milliseconds) or string lists. */
export type FlagValue = string | boolean | number | string[];

/**
 * A command-line flag, described as data so that libraries can publish the flags they
 * understand (for example @kproxy/kubeconfig's kubectl connection flags) without parsing argv.
 */
export interface FlagSpec {
  /** Long name without dashes: "kubeconfig" for --kubeconfig. */
  name: string;
  /** One-letter shorthand without the dash: "p" for -p. */
  short?: string;
  type: FlagType;
  /** Default value; durations in milliseconds. */
  default?: FlagValue;
  help: string;
  /** Placeholder shown in help, e.g. "path". */
  metavar?: string;
  hidden?: boolean;
}

/** Values by flag name, plus the names given explicitly on the command line. */
export interface FlagValues {
  values: Record<string, FlagValue | undefined>;
  changed: ReadonlySet<string>;
  /** Positional arguments, and everything after "--". */
  args: string[];
}
