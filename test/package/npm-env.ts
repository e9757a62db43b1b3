/**
 * The environment for a child npm: without what a parent `npm test` exports about this project (its prefix, package
 * fields, lifecycle), so an `npm install` in a scratch directory acts on that directory only, and quiet about funding,
 * audits and updates.
 */
export function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(package_|lifecycle_|command$|config_(local_|global_)?prefix$)/i.test(k)) continue;
    env[k] = v;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}
