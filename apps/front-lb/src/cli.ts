#!/usr/bin/env -S node --max-semi-space-size=1
// The Node flag caps V8's young generation at 1 MiB per semi-space (the default grows to 8-16 MiB):
// the relay's garbage is small and short-lived, so scavenges stay cheap and RSS stays ~25 MiB lower
// under load. `env -S` (coreutils 8.30+, BSD/macOS env) splits the line into arguments.
import { runMain } from "@kproxy/runtime";
import { main } from "./main.js";

runMain(() => main(process.argv.slice(2)));
