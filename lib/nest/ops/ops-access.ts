import { ForbiddenException, type CanActivate, type ExecutionContext, type Type } from '@nestjs/common';
import { BlockList, isIP } from 'node:net';
import { ClusterOptionsError } from '../../cluster/options.js';

/** A guard as `@UseGuards()` takes one: a CanActivate class (Nest instantiates it in this module) or an instance. */
export type OpsGuard = Type<CanActivate> | CanActivate;

/** The shorthand for 127.0.0.0/8 and ::1 (IPv4-mapped forms included) in opsAllowFrom. */
export const LOOPBACK = 'loopback';

/** opsGuard as a list (empty when not given); refuses anything `@UseGuards` would not take, naming the option. */
export function resolveOpsGuards(value: unknown): OpsGuard[] {
  if (value === undefined) return [];
  const list: unknown[] = Array.isArray(value) ? value : [value];
  for (const [i, g] of list.entries()) {
    const isClass = typeof g === 'function' && typeof (g as { prototype?: { canActivate?: unknown } }).prototype?.canActivate === 'function';
    const isInstance = typeof g === 'object' && g !== null && typeof (g as { canActivate?: unknown }).canActivate === 'function';
    if (!isClass && !isInstance) {
      const name = Array.isArray(value) ? `opsGuard[${i}]` : 'opsGuard';
      throw new ClusterOptionsError(`catga-cluster option ${name}: expected a guard (a class implementing CanActivate, or an instance of one), got ${shown(g)}`);
    }
  }
  return list as OpsGuard[];
}

/**
 * opsAllowFrom as a guard, or null when not given. Entries: 'loopback', an IPv4 or IPv6 address, or a CIDR range
 * ('10.0.0.0/8', 'fd00::/8'). Anything else fails here, at forRoot time, naming the entry.
 */
export function resolveAllowFrom(value: unknown): OpsAllowListGuard | null {
  if (value === undefined) return null;
  const fail = (name: string, got: unknown): never => {
    throw new ClusterOptionsError(
      `catga-cluster option ${name}: expected ${name === 'opsAllowFrom' ? 'a non-empty array of ' : ''}'${LOOPBACK}', an IP address or a CIDR range like '10.0.0.0/8', got ${shown(got)}`,
    );
  };
  if (!Array.isArray(value) || value.length === 0) fail('opsAllowFrom', value);
  const list = new BlockList();
  for (const [i, entry] of (value as unknown[]).entries()) {
    if (entry === LOOPBACK) {
      list.addSubnet('127.0.0.0', 8, 'ipv4');
      list.addAddress('::1', 'ipv6');
      continue;
    }
    if (typeof entry !== 'string') fail(`opsAllowFrom[${i}]`, entry);
    const [address = '', bits, extra] = (entry as string).split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) fail(`opsAllowFrom[${i}]`, entry);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) {
      list.addAddress(address, type);
    } else {
      const prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : -1;
      if (prefix < 0 || prefix > (family === 4 ? 32 : 128)) fail(`opsAllowFrom[${i}]`, entry);
      list.addSubnet(address, prefix, type);
    }
  }
  return new OpsAllowListGuard(list);
}

/** What express's Request and fastify's Request both offer (`ip` follows the platform's trust-proxy setting). */
interface ClientRequest {
  readonly ip?: string;
  readonly socket?: { readonly remoteAddress?: string };
  readonly raw?: { readonly socket?: { readonly remoteAddress?: string } };
}

/**
 * Admits a request to the ops routes only from an address in opsAllowFrom. The address is the client's as the HTTP
 * platform reports it (`request.ip`): the TCP peer's address unless the app set express's `trust proxy` (or fastify's
 * `trustProxy`), in which case the platform reads X-Forwarded-For as configured. The Host header is not consulted: the
 * client writes it.
 */
export class OpsAllowListGuard implements CanActivate {
  constructor(private readonly list: BlockList) {}

  canActivate(context: ExecutionContext): boolean {
    const address = clientAddress(context.switchToHttp().getRequest<ClientRequest>());
    if (address !== null && this.allows(address)) return true;
    throw new ForbiddenException('not served to this address (see the catga-cluster option opsAllowFrom)');
  }

  allows(address: string): boolean {
    const family = isIP(address);
    return family !== 0 && this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

function clientAddress(req: ClientRequest | undefined): string | null {
  const a = req?.ip ?? req?.socket?.remoteAddress ?? req?.raw?.socket?.remoteAddress;
  if (typeof a !== 'string' || a === '') return null;
  // An IPv6 link-local address may carry a zone ('fe80::1%eth0'); a BlockList takes the address without it.
  return a.replace(/%.*$/, '');
}

function shown(v: unknown): string {
  if (typeof v === 'function') return `function ${v.name || '(anonymous)'}`;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
