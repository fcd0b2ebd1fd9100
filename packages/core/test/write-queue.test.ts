import { WriteQueue } from "../src/write-queue";

describe("WriteQueue", () => {
  test("flushes in order with each write's callback", () => {
    const queue = new WriteQueue();
    const cb = jest.fn();
    queue.push("a", "utf8", undefined);
    queue.push(Buffer.from("bc"), undefined, cb);
    queue.push("ü", undefined, undefined);
    expect(queue.length).toBe(3);
    expect(queue.byteLength).toBe(1 + 2 + 2);
    const written: unknown[] = [];
    queue.flush((chunk, encoding, callback) => {
      written.push([String(chunk), encoding, callback]);
      return true;
    });
    expect(written).toEqual([
      ["a", "utf8", undefined],
      ["bc", undefined, cb],
      ["ü", undefined, undefined],
    ]);
    expect(queue.length).toBe(0);
    expect(queue.byteLength).toBe(0);
  });

  test("fail() calls every callback with the error", async () => {
    const queue = new WriteQueue();
    const errors: unknown[] = [];
    queue.push("a", undefined, (err) => errors.push(err));
    queue.push("b", undefined, (err) => errors.push(err));
    const err = new Error("closed");
    queue.fail(err);
    await new Promise((r) => process.nextTick(r));
    expect(errors).toEqual([err, err]);
    expect(queue.length).toBe(0);
  });
});
