// Entry of a serving thread (see main.ts, --workers).
import { parentPort, workerData } from "node:worker_threads";
import { runWorker, type WorkerData } from "./main.js";

if (parentPort !== null) void runWorker(workerData as WorkerData, parentPort);
