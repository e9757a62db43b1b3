/** The few calls the cluster makes on a logger; Nest's Logger and console both fit. */
export interface ClusterLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

export const silentLogger: ClusterLogger = { log() {}, warn() {}, error() {} };
