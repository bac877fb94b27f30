//! A real OpenID Provider (npm `oidc-provider`, certified) for tracegate's identity tests.
//
// It issues signed JWT access tokens non-interactively (client credentials + resource indicators),
// so the gateway's OIDC path is tested against an implementation we did not write. Keys are
// generated fresh at every start: nothing secret is checked in, and no two runs share keys.
//
// Usage: node provider.js --port PORT [--config FILE] [--parent-pid PID]
//   --config FILE    JSON: { "clients": [...], "resources": {...} } (see DEFAULT_CONFIG below)
//   --parent-pid PID exit when that process is gone, so a crashed test never leaks a provider
//
// Prints one line `ready <issuer>` on stdout once listening.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

// Used when no --config is given: enough to try the gateway by hand.
const DEFAULT_CONFIG = {
  clients: [
    { client_id: 'support-bot', client_secret: 'support-secret', groups: ['support'], tenant: 'acme' },
    { client_id: 'eng-bot', client_secret: 'eng-secret', groups: ['eng'], tenant: 'acme' },
  ],
  resources: {
    'urn:tracegate': { audience: 'tracegate', alg: 'RS256', ttl: 300 },
    'urn:tracegate:es256': { audience: 'tracegate', alg: 'ES256', ttl: 300 },
  },
};

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i];
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) {
      throw new Error(`bad argument ${name}`);
    }
    out[name.slice(2)] = value;
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const port = Number(args.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('provider.js: --port PORT is required');
  process.exit(2);
}
const config = args.config ? JSON.parse(fs.readFileSync(args.config, 'utf8')) : DEFAULT_CONFIG;
const issuer = `http://127.0.0.1:${port}`;

// One RSA and one P-256 signing key, as private JWKs: the provider publishes their public halves.
function signingKey(type, options, kid, alg) {
  const { privateKey } = crypto.generateKeyPairSync(type, options);
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, `rs256-${crypto.randomUUID()}`, 'RS256'),
    signingKey('ec', { namedCurve: 'P-256' }, `es256-${crypto.randomUUID()}`, 'ES256'),
  ],
};

const clients = config.clients.map((c) => ({
  client_id: c.client_id,
  client_secret: c.client_secret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope: 'traces',
  groups: c.groups ?? [],
  ...(c.tenant === undefined ? {} : { tenant: c.tenant }),
}));

const provider = new Provider(issuer, {
  clients,
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['traces'],
  extraClientMetadata: { properties: ['groups', 'tenant'] },
  // The identity a client stands for travels in the token, as an IdP's group mapping would.
  async extraTokenClaims(ctx, token) {
    const client = ctx.oidc.client ?? await ctx.oidc.provider.Client.find(token.clientId);
    if (!client) return undefined;
    const claims = { groups: client.groups ?? [] };
    if (client.tenant !== undefined) claims.tenant = client.tenant;
    return claims;
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf ?? undefined,
      useGrantedResource: () => true,
      async getResourceServerInfo(ctx, resourceIndicator) {
        const rs = config.resources[resourceIndicator];
        if (!rs) throw new errors.InvalidTarget();
        return {
          scope: 'traces',
          audience: rs.audience,
          accessTokenTTL: rs.ttl ?? 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: rs.alg ?? 'RS256' } },
        };
      },
    },
  },
});

const server = http.createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});

if (args['parent-pid']) {
  const parent = Number(args['parent-pid']);
  setInterval(() => {
    try {
      process.kill(parent, 0);
    } catch {
      process.exit(0);
    }
  }, 500).unref();
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
