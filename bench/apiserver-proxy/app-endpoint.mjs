#!/usr/bin/env node
// A Service endpoint that does work for each request, as an application pod does, for the
// apiserver-proxy benchmark: `node app-endpoint.mjs PORT cpu:MICROS` spends MICROS µs of CPU
// (computing the page it returns) and `node app-endpoint.mjs PORT wait:MILLIS` waits MILLIS ms (as a
// handler that asks a database) before answering with a 2 KiB page. Loopback only.
import { createHash } from "node:crypto";
import { createServer } from "node:http";

const [portArg, mode = "cpu:0"] = process.argv.slice(2);
const [kind, amountText] = mode.split(":");
const amount = Number(amountText);
if (!Number.isInteger(Number(portArg)) || !["cpu", "wait"].includes(kind) || !(amount >= 0)) {
  console.error("usage: app-endpoint.mjs PORT cpu:MICROS|wait:MILLIS");
  process.exit(2);
}

/** Hashes until `micros` µs of CPU have gone by; returns the last digest (so nothing is optimised away). */
function work(micros) {
  const until = process.hrtime.bigint() + BigInt(Math.round(micros * 1000));
  let digest = "seed";
  do digest = createHash("sha256").update(digest).digest("hex");
  while (process.hrtime.bigint() < until);
  return digest;
}

const page = (digest) => `${digest}\n${"x".repeat(2048 - digest.length - 1)}`;
const server = createServer((req, res) => {
  req.resume();
  const answer = (digest) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(page(digest));
  };
  if (kind === "cpu") answer(work(amount));
  else
    setTimeout(
      () =>
        answer(
          createHash("sha256")
            .update(req.url ?? "")
            .digest("hex"),
        ),
      amount,
    );
});
server.keepAliveTimeout = 60_000;
server.listen(Number(portArg), "127.0.0.1");
process.on("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
});
