// `scope_policy_js.wasm` (auth-policy): who may publish in a scope, and which
// scopes anonymous callers may not read. The JavaScript twin of the Rust
// `scope_policy.wasm`: same configuration, same decisions, same reasons.
//
//   [plugins.config]
//   # Only these users may publish, unpublish, deprecate, change dist-tags or
//   # owners of packages in these scopes.
//   publishers = { "@acme" = ["alice", "bob"] }
//   # Anonymous callers may not read packages in these scopes.
//   private_scopes = ["@acme-internal"]
//
// Everything else is allowed (Cairn's own permission checks still apply).
// Scopes are compared case-insensitively, user names exactly. Admins get no
// exemption: an admin who should publish in a listed scope must be listed.

import { log } from 'cairn:plugin/host@0.1.1';
import { list, loaded, message, readConfig, string, table } from '../lib/config.js';

/** A scope as written in the configuration: `@name`, nothing else; lower-cased. */
function checkScope(scope, setting) {
    if (!scope.startsWith('@')) {
        throw new Error(`scope-policy: \`${setting}\`: scope \`${scope}\` must start with \`@\` (write \`@${scope}\`)`);
    }
    const name = scope.slice(1);
    if (name === '' || name.includes('/')) {
        throw new Error(`scope-policy: \`${setting}\`: \`${scope}\` is not a scope (expected \`@name\`)`);
    }
    return scope.toLowerCase();
}

const rules = loaded(() => {
    const config = readConfig({ publishers: table(list(string()), new Map()), private_scopes: list(string(), []) });
    const publishers = new Map();
    for (const [scope, users] of config.publishers) {
        const key = checkScope(scope, 'publishers');
        if (publishers.has(key)) {
            throw new Error(`scope-policy: scope \`${scope}\` is listed twice in \`publishers\` (scopes are case-insensitive)`);
        }
        publishers.set(key, users);
    }
    const privateScopes = config.private_scopes.map((scope) => checkScope(scope, 'private_scopes'));
    return { publishers, privateScopes };
});

/** The package's scope, lower-cased: the host's `scope`, or the `@scope` part of the name. */
function scopeOf(pkg) {
    let scope = pkg.scope;
    if (scope === undefined || scope === null) {
        if (!pkg.name.startsWith('@')) return null;
        scope = pkg.name.split('/')[0];
    }
    scope = scope.toLowerCase();
    return scope.startsWith('@') ? scope : `@${scope}`;
}

const VERBS = {
    publish: 'publish',
    unpublish: 'unpublish',
    deprecate: 'deprecate',
    'dist-tag': 'change dist-tags',
    owner: 'change owners',
};

const ALLOW = { tag: 'allow' };
const deny = (reason) => ({ tag: 'deny', val: reason });

function decide({ publishers, privateScopes }, action, pkg, caller) {
    if (pkg === undefined || pkg === null) return ALLOW;
    const scope = scopeOf(pkg);
    if (scope === null) return ALLOW;
    const user = caller.user ?? null;
    if (action === 'read') {
        if (user === null && privateScopes.includes(scope)) {
            return deny(`scope ${scope} is private: anonymous users may not read ${pkg.name}; log in first`);
        }
        return ALLOW;
    }
    const verb = VERBS[action];
    const allowed = publishers.get(scope);
    if (verb === undefined || allowed === undefined) return ALLOW;
    if (user !== null && allowed.includes(user)) return ALLOW;
    const who = user === null ? 'anonymous users' : `user ${user}`;
    return deny(`${who} may not ${verb} packages in scope ${scope} (scope-policy publishers)`);
}

export function init() {
    try {
        const { publishers, privateScopes } = rules();
        log('info', `${publishers.size} publisher scope(s), ${privateScopes.length} private scope(s)`);
    } catch (e) {
        throw message(e);
    }
}

export const policy = {
    authorize(action, pkg, caller) {
        let loadedRules;
        try {
            loadedRules = rules();
        } catch (e) {
            return deny(message(e));
        }
        return decide(loadedRules, action, pkg, caller);
    },
};
