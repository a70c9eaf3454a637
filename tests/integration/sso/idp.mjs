// A real OpenID provider for the single sign-on tests: npm's oidc-provider (panva), configured from a JSON file.
// Why not Dex: see tests/integration/sso/idp.py. Usage: node idp.mjs CONFIG.json (OIDC_PROVIDER_DIR: where npm
// installed oidc-provider). The config: {issuer, port, clients: [...], accounts: {login: {email, groups, ...}}}.
// Sign-in is the provider's own development login form (any password; the login is the account's key), the
// consent is granted at once (loadExistingGrant), refresh tokens are issued for every authorization code.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const where = join(process.env.OIDC_PROVIDER_DIR, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(where).href);

const accounts = config.accounts;
const provider = new Provider(config.issuer, {
  clients: config.clients,
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  conformIdTokenClaims: false, // the ID token carries the scopes' claims (Dex's do)
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  ttl: { AccessToken: 600, IdToken: 600, RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600 },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      if (found) return found;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups offline_access');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;
const server = provider.listen(config.port, '127.0.0.1', () => console.log(`listening on ${config.issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
