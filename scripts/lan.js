"use strict";
/**
 * "Machines" on one box for the Redis transport's tests and `chaos --machines`: a network
 * namespace each, on a bridge in the caller's namespace (the gateway, where Redis listens), with a
 * random private /24. Needs root and `ip` (iproute2).
 */
const { execFileSync } = require("node:child_process");
const { randomBytes } = require("node:crypto");

/** Runs `ip` with `args`; throws with its stderr. */
function ip(...args) {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** Whether this process may build network namespaces (root, with `ip netns`). */
function haveNetns() {
  if (process.getuid?.() !== 0) return false;
  const probe = `ocprobe${process.pid}`;
  try {
    ip("netns", "add", probe);
    ip("netns", "del", probe);
    return true;
  } catch {
    return false;
  }
}

/**
 * `count` machines. `cut(i)` downs machine i's link on the bridge side: nothing it sends arrives
 * anywhere and nothing sent to it arrives (a pulled cable, a partition), while its processes run
 * on and still reach each other. `restore(i)` undoes it. Always `destroy()` it.
 */
class Lan {
  constructor(count) {
    this.count = count;
    this.id = randomBytes(3).toString("hex");
    this.subnet = `10.${200 + (randomBytes(1)[0] % 50)}.${randomBytes(1)[0]}`;
    this.gateway = `${this.subnet}.1`;
    this.names = [];
    const bridge = `oc${this.id}br`;
    try {
      ip("link", "add", "name", bridge, "type", "bridge");
      this.bridge = bridge;
      ip("addr", "add", `${this.gateway}/24`, "dev", bridge);
      ip("link", "set", bridge, "up");
      for (let i = 0; i < count; i++) {
        const ns = this.netns(i);
        const inside = `oc${this.id}n${i}`;
        ip("netns", "add", ns);
        this.names.push(ns);
        ip("link", "add", this.link(i), "type", "veth", "peer", "name", inside);
        ip("link", "set", inside, "netns", ns);
        ip("link", "set", this.link(i), "master", bridge);
        ip("link", "set", this.link(i), "up");
        ip("-n", ns, "addr", "add", `${this.address(i)}/24`, "dev", inside);
        ip("-n", ns, "link", "set", inside, "up");
        ip("-n", ns, "link", "set", "lo", "up");
      }
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /** Machine i's link on the bridge (its cable). */
  link(i) {
    return `oc${this.id}h${i}`;
  }

  /** Machine i's network namespace: run a process there with `ip netns exec NAME cmd...`. */
  netns(i) {
    return `oc${this.id}m${i}`;
  }

  /** Machine i's address. */
  address(i) {
    return `${this.subnet}.${10 + i}`;
  }

  cut(i) {
    ip("link", "set", this.link(i), "down");
  }

  restore(i) {
    ip("link", "set", this.link(i), "up");
  }

  destroy() {
    // A namespace's end of a veth pair goes with it, and the bridge's end with that.
    for (const ns of this.names.splice(0)) {
      try {
        ip("netns", "del", ns);
      } catch {}
    }
    if (this.bridge !== undefined) {
      try {
        ip("link", "del", this.bridge);
      } catch {}
      this.bridge = undefined;
    }
  }
}

module.exports = { Lan, haveNetns };
