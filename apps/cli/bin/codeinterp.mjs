#!/usr/bin/env node
// The CLI is TypeScript like the rest of the repo; tsx (already how the apps run) loads it.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
process.exitCode = await main();
