/**
 * Text a peer chose (a REJECT reason, a claimed id) made safe to log: control characters — line breaks above all —
 * become \u escapes, so a peer cannot start a forged line in this node's log or garble a terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
