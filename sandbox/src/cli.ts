#!/usr/bin/env node
import { createLogger, type FlagSpec, KproxyError } from "@kproxy/core";
import { formatFlagHelp, onShutdownSignal, parseFlags, runMain } from "@kproxy/runtime";
import { startSandbox, WORKLOADS } from "./sandbox.js";

const FLAGS: FlagSpec[] = [
  { name: "dir", type: "string", default: ".sandbox", help: "Directory for the kubeconfig and other files." },
  { name: "port", type: "int", default: 0, help: "Port of the fake API server (0 = any free port)." },
  {
    name: "kubectl-proxy-port",
    type: "int",
    default: 8001,
    help: "Port of kubectl-proxy (0 = any free port, -1 = do not start it).",
  },
  {
    name: "pod-subnet",
    type: "int",
    default: 10,
    help: "Pods get the loopback addresses 127.0.<pod-subnet>.N.",
  },
  { name: "v", short: "v", type: "int", default: 0, help: "Log level: 0 warnings, 1 info, 2 debug." },
];

const row = (label: string) => `  ${label.padEnd(17)}`;

runMain(async () => {
  const flags = parseFlags(FLAGS, process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(
      `kproxy sandbox: a fake cluster with local endpoints.\n\nUsage:\n  npm start -- [options]\n\n${formatFlagHelp(FLAGS)}\n`,
    );
    return 0;
  }
  if (flags.args.length > 0)
    throw new KproxyError("FLAG_INVALID", `unexpected argument ${JSON.stringify(flags.args[0])}`);
  const verbosity = flags.values.v as number;
  const logger = createLogger({ level: verbosity >= 2 ? "debug" : verbosity === 1 ? "info" : "warn" });
  const sandbox = await startSandbox({
    dir: flags.values.dir as string,
    port: flags.values.port as number,
    podSubnet: flags.values["pod-subnet"] as number,
    kubectlProxyPort:
      (flags.values["kubectl-proxy-port"] as number) < 0
        ? false
        : (flags.values["kubectl-proxy-port"] as number),
    logger,
  });
  // Listen for Ctrl-C before saying that it works.
  const stopped = new Promise<void>((resolve) => {
    onShutdownSignal(() => resolve());
  });
  const kc = sandbox.kubeconfigPath;
  const services = WORKLOADS.map((w) => `${w.namespace}/${w.service.name}`).join(", ");
  process.stdout.write(
    [
      "kproxy sandbox is running.",
      "",
      `${row("API server")}${sandbox.apiServer.url}  (fake; HTTPS with its own CA)`,
      `${row("kubeconfig")}${kc}`,
      `${row("services")}${services}`,
      ...(sandbox.kubectlProxy
        ? [`${row("kubectl-proxy")}${sandbox.kubectlProxy.url}  (like kubectl proxy: no credentials needed)`]
        : []),
      ...(sandbox.frontLb
        ? [
            `${row("front-lb")}${sandbox.frontLb.url}  (in front of ${sandbox.apiServer.url} and its replica on 127.0.0.2)`,
            `${row("front-lb stats")}${sandbox.frontLb.adminUrl}/stats`,
          ]
        : []),
      ...(sandbox.apiserverProxy
        ? [`${row("apiserver-proxy")}${sandbox.apiserverProxy.url}  (token and CA: see below)`]
        : []),
      `${row("pods")}${sandbox.backends.map((b) => `${b.namespace}/${b.pod}=${b.ip}:${b.port}`).join(" ")}`,
      "",
      "Try:",
      `  export KUBECONFIG=${kc}`,
      "  kubectl get svc,pods,endpointslices -A",
      "  kubectl get svc web -o yaml",
      "  kubectl exec web-0 -- echo hello",
      "  kubectl port-forward pod/web-0 18080:8080   # then: curl localhost:18080/info",
      "  kubectl get pods -w                        # and in another shell: kubectl delete pod web-2",
      ...(sandbox.kubectlProxy ? [`  curl ${sandbox.kubectlProxy.url}/api/v1/namespaces/demo/services`] : []),
      ...(sandbox.frontLb
        ? [`  kubectl --kubeconfig ${sandbox.frontLb.kubeconfigPath} get ns   # through front-lb`]
        : []),
      ...(sandbox.apiserverProxy
        ? [
            `  curl --cacert ${sandbox.apiserverProxy.caPath} -H "Authorization: Bearer $(cat ${sandbox.apiserverProxy.tokenPath})" \\`,
            `       ${sandbox.apiserverProxy.url}/api/v1/namespaces/demo/services/web:http/proxy/`,
          ]
        : []),
      "",
      "Ctrl-C stops everything.",
      "",
    ].join("\n"),
  );
  await stopped;
  process.stdout.write("stopping...\n");
  await sandbox.close();
  return 0;
});
