import { packageBuild } from "../tsup.shared";

export default packageBuild(["src/cli.ts", "src/index.ts"], { dts: false });
