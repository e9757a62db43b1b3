/** What the transport logs through: connection changes (log), refused or dropped peers (warn), dial noise (debug). */
export interface TransportLogger {
  log(message: string): void;
  warn(message: string): void;
  debug?(message: string): void;
}

export function consoleLogger(nodeId: string): TransportLogger {
  const prefix = `[catga transport ${nodeId}]`;
  return {
    log: (m) => console.log(`${prefix} ${m}`),
    warn: (m) => console.warn(`${prefix} ${m}`),
  };
}
