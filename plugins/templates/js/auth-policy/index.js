// {{name}} (auth-policy): only the users listed for a scope may publish in it.
// Everything else is allowed (Cairn's own permission checks still apply).

import { config, log } from 'cairn:plugin/host@{{wit_version}}';

// [plugins.config] publishers = { "@acme" = ["alice"] }
const publishers = new Map();

export function init() {
    const settings = JSON.parse(config()).publishers ?? {};
    if (typeof settings !== 'object' || Array.isArray(settings) || !Object.values(settings).every(Array.isArray)) {
        throw '`publishers` must map scopes to lists of users';
    }
    for (const [scope, users] of Object.entries(settings)) publishers.set(scope, users);
    log('info', `${publishers.size} scope(s) restricted`);
}

export const policy = {
    authorize(action, pkg, caller) {
        const users = pkg?.scope ? publishers.get(pkg.scope) : undefined;
        if (users === undefined || action !== 'publish' || users.includes(caller.user)) return { tag: 'allow' };
        return { tag: 'deny', val: `only ${users.join(', ')} may publish in ${pkg.scope}` };
    },
};
