"use strict";
/**
 * An ordered lock service over open-channel's message layer, in the manner of `ipqueue`: every
 * process runs this same code, the locks live in whichever process hosts, and they survive the
 * host's death. Each acquire takes a ticket from one counter; a lock goes to its waiters in ticket
 * order.
 *
 * How it survives a SIGKILL of the host: a member holds (`messenger.hold`) its share of the state,
 * `waiting:<lock>` = its ticket while it waits, `held:<lock>` = its ticket while it holds, and
 * `seen` = the highest ticket it has seen. Its hello gives the next host all of it before any
 * request it sends again, so the new host rebuilds each lock's holder and queue (onJoin) and
 * continues the counter above every ticket a living member has seen. A lock held by the dead host's
 * process is free (its holder is gone). The new host grants nothing for `graceMs` after it starts
 * hosting, and issues no ticket, so that the members still reconnecting (a few ms here) are back
 * before it decides: a grace period, as Chubby's new master waits for its clients to come back. A
 * member back after the grace finds a lock it held given away (it is told: its release throws
 * ELOST), and its ticket may equal a newer one's.
 *
 *   const { openLocks } = require("./locks");
 *   const locks = openLocks("my-app-locks");
 *   const ticket = await locks.acquire("db");
 *   try { ... } finally { await locks.release("db"); }
 */
const { openMessageChannel } = require("open-channel");

const WAITING = "waiting:";
const HELD = "held:";

/** Inserts `entry` into `queue`, kept in ticket order. */
function insert(queue, entry) {
  let i = queue.length;
  while (i > 0 && queue[i - 1].ticket > entry.ticket) i--;
  queue.splice(i, 0, entry);
}

/**
 * Opens the lock service `name` in this process. Options: `graceMs` (default 1000: more than the
 * members take to reconnect after a failover, on a busy machine too; across machines, more),
 * `transport`
 * (the platform's by default), `timeout` (connect timeout, default 5000).
 */
function openLocks(name, options = {}) {
  const graceMs = options.graceMs ?? 1000;
  /** The host's state, made when this process starts hosting (undefined otherwise). */
  let st;
  const fresh = () => ({ counter: 0, locks: new Map(), graceUntil: Date.now() + graceMs, timer: undefined });
  const host = () => (st ??= fresh());
  const lockOf = (lock) => {
    let l = host().locks.get(lock);
    if (l === undefined) {
      l = { holder: undefined, queue: [] };
      host().locks.set(lock, l);
    }
    return l;
  };
  const stateOf = (session) => channel.host?.member(session)?.state ?? new Map();

  /** Gives `lock` to its first waiter, if free, past the grace, and that waiter is waiting. */
  const grant = (lock) => {
    const s = host();
    const wait = s.graceUntil - Date.now();
    if (wait > 0) {
      s.timer ??= setTimeout(() => {
        s.timer = undefined;
        for (const name of s.locks.keys()) grant(name);
      }, wait);
      return;
    }
    const l = lockOf(lock);
    if (l.holder !== undefined || l.queue.length === 0 || l.queue[0].resolve === undefined) return;
    const next = l.queue.shift();
    l.holder = next;
    next.resolve({ ticket: next.ticket });
  };

  const channel = openMessageChannel(
    name,
    {
      onJoin(member) {
        // What a member holds comes back with it: its locks, its places in line, the tickets seen.
        const s = host();
        for (const [key, value] of member.state) {
          if (typeof value !== "number") continue;
          s.counter = Math.max(s.counter, value);
          if (key.startsWith(HELD)) {
            const l = lockOf(key.slice(HELD.length));
            if (l.holder === undefined || l.holder.session === member.session) l.holder = { session: member.session, ticket: value };
            else {
              // Back after the grace, its lock given meanwhile: it lost it, and is told.
              channel.host?.sendTo(member, { lost: key.slice(HELD.length) }).catch(() => undefined);
            }
          } else if (key.startsWith(WAITING)) {
            const l = lockOf(key.slice(WAITING.length));
            if (!l.queue.some((w) => w.session === member.session))
              insert(l.queue, { session: member.session, ticket: value, resolve: undefined });
          }
        }
      },
      onLeave(member) {
        // A member gone (closed, or lost for 2 s): its locks and places are free.
        for (const [lock, l] of host().locks) {
          l.queue = l.queue.filter((w) => w.session !== member.session);
          if (l.holder?.session === member.session) l.holder = undefined;
          grant(lock);
        }
      },
      onRequest(body, from) {
        const s = host();
        const l = lockOf(body.lock);
        const held = stateOf(from.session);
        switch (body.op) {
          case "ticket": {
            // Sent again to a new host after the old one answered it: the ticket it got stands.
            const had = held.get(WAITING + body.lock) ?? held.get(HELD + body.lock);
            if (from.redelivered && had !== undefined) return { ticket: had, seen: s.counter };
            const issue = () => {
              const ticket = ++s.counter;
              insert(l.queue, { session: from.session, ticket, resolve: undefined });
              return { ticket, seen: s.counter };
            };
            // No ticket before the members are back: the counter continues above all they saw.
            const wait = s.graceUntil - Date.now();
            return wait > 0 ? new Promise((resolve) => setTimeout(() => resolve(issue()), wait)) : issue();
          }
          case "wait": {
            if (held.get(HELD + body.lock) === body.ticket) return { ticket: body.ticket };
            // A wait the member no longer stands behind (it sent it before, and has moved on since).
            if (held.get(WAITING + body.lock) !== body.ticket) return { stale: true };
            let entry = l.queue.find((w) => w.session === from.session && w.ticket === body.ticket);
            if (entry === undefined) {
              entry = { session: from.session, ticket: body.ticket, resolve: undefined };
              insert(l.queue, entry);
            }
            return new Promise((resolve) => {
              entry.resolve = resolve;
              grant(body.lock);
            });
          }
          case "release":
            if (l.holder?.session === from.session && l.holder.ticket === body.ticket) {
              l.holder = undefined;
              grant(body.lock);
            }
            return { seen: s.counter };
          default:
            throw Object.assign(new Error(`unknown op ${body.op}`), { code: "EBADOP" });
        }
      },
    },
    options.transport === undefined ? {} : { transport: options.transport },
  );
  // The host's state is made at its first use in a tenure (the "hosting" event or the first
  // onJoin, whichever runs first), and dropped when this process stops hosting.
  channel.channel.on("hosting", (isHost) => {
    if (isHost) {
      host();
      return;
    }
    if (st?.timer !== undefined) clearTimeout(st.timer);
    st = undefined;
  });

  const messenger = channel.connect(options.timeout);
  const lost = new Set();
  messenger.handle({
    onMessage(body) {
      if (typeof body?.lost !== "string") return;
      messenger.release(HELD + body.lost);
      lost.add(body.lost);
    },
  });
  let seen = 0;
  const see = (ticket) => {
    if (ticket > seen) {
      seen = ticket;
      messenger.hold("seen", seen);
    }
  };
  const busy = new Set();

  return {
    channel,
    messenger,
    /** Waits for `lock` (behind every earlier ticket) and takes it; resolves with the ticket. */
    async acquire(lock) {
      if (busy.has(lock) || messenger.held.has(HELD + lock))
        throw Object.assign(new Error(`already acquiring or holding ${lock}`), { code: "EBUSY" });
      busy.add(lock);
      try {
        for (;;) {
          // No timeouts: a ticket given up on would stand in line for nothing; a waiter waits as
          // long as the line is long.
          const { ticket, seen: counter } = await messenger.request({ op: "ticket", lock }, { timeout: 0 });
          messenger.hold(WAITING + lock, ticket);
          see(Math.max(ticket, counter));
          const granted = await messenger.request({ op: "wait", lock, ticket }, { timeout: 0 });
          if (granted.stale) {
            // The host did not know this member waits with it (its view lagged): in line again.
            messenger.release(WAITING + lock);
            continue;
          }
          lost.delete(lock);
          messenger.hold(HELD + lock, ticket);
          messenger.release(WAITING + lock);
          return ticket;
        }
      } finally {
        busy.delete(lock);
      }
    },
    /** Gives `lock` back to the next in line. */
    async release(lock) {
      const ticket = messenger.held.get(HELD + lock);
      if (ticket === undefined) {
        if (lost.delete(lock)) throw Object.assign(new Error(`${lock} was lost (this member came back too late)`), { code: "ELOST" });
        throw Object.assign(new Error(`not holding ${lock}`), { code: "ENOTHELD" });
      }
      // Let go first: from here on, no host counts this member as the holder.
      messenger.release(HELD + lock);
      const { seen: counter } = await messenger.request({ op: "release", lock, ticket });
      see(counter);
    },
    /** Whether this member holds `lock`. */
    holds(lock) {
      return messenger.held.has(HELD + lock);
    },
    close: (closeOptions) => messenger.close(closeOptions),
  };
}

module.exports = { openLocks };
