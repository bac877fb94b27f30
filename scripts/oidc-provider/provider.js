//! A real OpenID Provider (npm `oidc-provider`, certified) for tracegate's identity tests.
//
// It issues signed JWT access tokens non-interactively (client credentials + resource indicators),
// so the gateway's OIDC path is tested against an implementation we did not write. Keys are
// generated fresh at every start: nothing secret is checked in, and no two runs share keys.
//
// For browser sign-in it also serves the authorization code flow (PKCE S256 required) for the
// `browser_clients`, with a deliberately tiny interactive login: `GET /interaction/<uid>` shows an
// HTML form naming the `users`, `POST /interaction/<uid>/login` with `login=<username>` signs that
// user in; consent is granted without asking (a first-party client). Tests drive it with an HTTP
// client that follows redirects, reads the form and posts it, as a browser would. ID tokens carry
// the user's `groups` (and `tenant`) claims.
//
// Usage: node provider.js --port PORT [--config FILE] [--parent-pid PID]
//   --config FILE    JSON: { "clients": [...], "resources": {...}, "browser_clients": [...],
//                    "users": [...] } (see DEFAULT_CONFIG below)
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
  // Authorization-code clients (the gateway's browser sign-in).
  browser_clients: [
    {
      client_id: 'tracegate-console',
      client_secret: 'console-secret',
      redirect_uris: ['http://127.0.0.1:8080/auth/callback'],
    },
  ],
  // People who can sign in interactively.
  users: [
    { username: 'sam', groups: ['support'], tenant: 'acme' },
    { username: 'erin', groups: ['eng'], tenant: 'acme' },
  ],
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

const clients = (config.clients ?? []).map((c) => ({
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
for (const c of config.browser_clients ?? []) {
  clients.push({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: c.redirect_uris,
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: c.id_token_alg ?? 'RS256',
    scope: 'openid',
  });
}
const users = new Map((config.users ?? []).map((u) => [u.username, u]));

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const provider = new Provider(issuer, {
  clients,
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'traces'],
  extraClientMetadata: { properties: ['groups', 'tenant'] },
  // Browser sign-in: the groups an IdP's group mapping would put in the ID token.
  claims: { openid: ['sub', 'groups', 'tenant'] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    const user = users.get(id);
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id, groups: user.groups ?? [] };
        if (user.tenant !== undefined) claims.tenant = user.tenant;
        return claims;
      },
    };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
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

// The interactive login (see the header). Everything else is the provider's.
async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 64 * 1024) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;
  if (req.method === 'POST' && req.url.endsWith('/login')) {
    const form = await readForm(req);
    const login = form.get('login') ?? '';
    if (!users.has(login)) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`unknown user ${login}`);
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
    return;
  }
  if (prompt.name === 'login') {
    const options = [...users.keys()].map((u) => `<option value="${escapeHtml(u)}">${escapeHtml(u)}</option>`).join('');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Sign in</title><form method="post" action="/interaction/${escapeHtml(uid)}/login">` +
      `<label>User <select name="login">${options}</select></label><button>Sign in</button></form>`);
    return;
  }
  // Consent: granted as asked, as for a first-party client.
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((err) => {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end(`interaction failed: ${err.message}`);
    });
    return;
  }
  handle(req, res);
});
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
