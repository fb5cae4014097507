#!/usr/bin/env node
import { runMain } from "@kproxy/runtime";
import { main } from "./main.js";

runMain(() => main(process.argv.slice(2)));
