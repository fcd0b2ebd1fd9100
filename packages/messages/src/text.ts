/**
 * `x` as text, whatever it is: what a handler throws, and what a remote error's message decodes
 * to, may be any value (an object whose `toString` throws or is not a function included).
 */
export function text(x: unknown): string {
  if (typeof x === "string") return x;
  try {
    return String(x);
  } catch {
    return "(a value that cannot be shown as text)";
  }
}
