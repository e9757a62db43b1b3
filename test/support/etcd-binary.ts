/** The etcd server binary: found on PATH, or installed from Debian's `etcd-server` package when missing. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface EtcdBinary {
  readonly path: string;
  /** "3.4.23", from `etcd --version`. */
  readonly version: string;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function install(): void {
  process.stderr.write('etcd is not on PATH: installing the Debian package etcd-server (apt-get)\n');
  const asRoot = process.getuid?.() === 0;
  const apt = (args: string[]) => execFileSync(asRoot ? 'apt-get' : 'sudo', asRoot ? args : ['apt-get', ...args], { stdio: 'inherit' });
  try {
    apt(['update']);
    apt(['install', '-y', 'etcd-server']);
  } catch (e) {
    throw new Error(`could not install etcd-server with apt-get (${(e as Error).message}); install it by hand: apt-get install -y etcd-server`);
  }
}

/** The etcd binary to benchmark against, installing it first if needed. */
export function findEtcd(): EtcdBinary {
  let bin = onPath('etcd');
  if (!bin) {
    install();
    bin = onPath('etcd');
    if (!bin) throw new Error('etcd-server was installed but no etcd binary is on PATH');
  }
  const out = execFileSync(bin, ['--version'], { encoding: 'utf8' });
  const version = /etcd Version:\s*(\S+)/.exec(out)?.[1];
  if (!version) throw new Error(`${bin} --version did not print a version:\n${out}`);
  return { path: bin, version };
}
