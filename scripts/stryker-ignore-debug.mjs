/**
 * A Stryker ignorer: no mutants in the debug output. A `debug(...)` call and an
 * `if (debugEnabled()) { ... }` block only write to the NODE_DEBUG=open-channel log, which no
 * behaviour depends on; a mutant there (another format string, the call removed) can only be
 * "survived" and tells nothing about the tests. Stryker reports them as Ignored, out of the score.
 */
import { declareValuePlugin, PluginKind } from "@stryker-mutator/api/plugin";

const isCallTo = (node, name) => node?.type === "CallExpression" && node.callee.type === "Identifier" && node.callee.name === name;

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, "debug-output", {
    shouldIgnore(path) {
      if (isCallTo(path.node, "debug")) return "debug output only";
      if (path.node.type === "IfStatement" && isCallTo(path.node.test, "debugEnabled") && path.node.alternate == null) {
        return "debug output only";
      }
      return undefined;
    },
  }),
];
