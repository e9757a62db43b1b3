import { BadRequestException, Body, Controller, Delete, Get, HttpCode, NotFoundException, Param, Post, Put, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ClusterCoordinator } from '../../lib/index.js';

/** The replicated key-value store over HTTP, for demos and tests. Any node accepts any request. */
@Controller('kv')
export class KvController {
  constructor(private readonly cluster: ClusterCoordinator) {}

  @Put(':key')
  async put(@Param('key') key: string, @Body() body: { value?: unknown }) {
    if (!body || !('value' in body)) throw new BadRequestException('body must be {"value": ...}');
    const { version } = await this.cluster.store.put(key, body.value);
    return { version };
  }

  @Get(':key')
  async get(@Param('key') key: string, @Query('consistency') consistency?: string) {
    if (consistency !== undefined && consistency !== 'local' && consistency !== 'linearizable') {
      throw new BadRequestException('consistency is "local" or "linearizable"');
    }
    const e = await this.cluster.store.get(key, { consistency: consistency === 'local' ? 'local' : 'linearizable' });
    if (!e) throw new NotFoundException(`no key ${key}`);
    return { value: e.value, version: e.version };
  }

  @Post(':key/cas')
  @HttpCode(200)
  async cas(@Param('key') key: string, @Body() body: { expectedVersion?: unknown; value?: unknown }, @Res({ passthrough: true }) res: Response) {
    const expected = body?.expectedVersion;
    if (typeof expected !== 'number' || !Number.isInteger(expected) || expected < 0) {
      throw new BadRequestException('body must be {"expectedVersion": n, "value": ...} with n >= 0 (0 = must be absent)');
    }
    const r = await this.cluster.store.cas(key, expected, body.value);
    if (!r.ok) res.status(409);
    return { ok: r.ok, version: r.version };
  }

  @Delete(':key')
  async remove(@Param('key') key: string) {
    await this.cluster.store.delete(key);
    return { ok: true };
  }
}
