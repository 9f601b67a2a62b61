// `block_rules_js.wasm` (block-rule): the JavaScript twin of the Rust
// `block_rules.wasm`. Blocks package versions by name, license or install
// scripts, on publish and on sync; same configuration, same reasons.
//
//   [plugins.config]
//   # Regular expressions, searched anywhere in the package name: anchor them
//   # with ^ and $ to match whole names.
//   name_patterns = ["^evil-", "^@bad/"]
//   # License ids, compared case-insensitively with the manifest's `license`
//   # (also the old `{ "type": ... }` and `licenses: [...]` forms; in an SPDX
//   # expression such as `(MIT OR GPL-3.0)` any listed id blocks).
//   licenses = ["GPL-3.0", "AGPL-3.0-only"]
//   # Block versions that run code at install: a preinstall, install or
//   # postinstall script, or a binding.gyp that npm builds with node-gyp.
//   block_install_scripts = true
//
// The first rule that matches gives the reason, which names it.
//
// One difference from the Rust sample: `name_patterns` are JavaScript regular
// expressions (with the `u` flag) rather than Rust `regex` syntax. The common
// syntax (classes, anchors, groups, alternation, repetition) is the same, but
// JavaScript's engine backtracks: a pathological pattern can be slow, and is
// then stopped by the plugin's time limit like any other slow plugin.

import { log } from 'cairn:plugin/host@0.1.1';
import { bool, list, loaded, message, readConfig, string } from '../lib/config.js';

const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

const rules = loaded(() => {
    const c = readConfig({ name_patterns: list(string(), []), licenses: list(string(), []), block_install_scripts: bool(false) });
    const namePatterns = c.name_patterns.map((pattern) => {
        try {
            return { source: pattern, regex: new RegExp(pattern, 'u') };
        } catch (e) {
            throw new Error(`block-rules: invalid regex \`${pattern}\` in \`name_patterns\`: ${message(e)}`);
        }
    });
    const licenses = c.licenses.map((raw) => {
        const id = raw.trim();
        if (id === '') throw new Error('block-rules: empty license id in `licenses`');
        return { lower: asciiLower(id), id };
    });
    return { namePatterns, licenses, blockInstallScripts: c.block_install_scripts };
});

/** The license strings a manifest declares: `license` as a string or `{ "type": ... }`, and the old `licenses` list. */
function declaredLicenses(manifest) {
    const text = (value) => {
        if (typeof value === 'string') return value;
        if (isObject(value) && typeof value.type === 'string') return value.type;
        return null;
    };
    const out = [];
    const license = text(manifest.license);
    if (license !== null) out.push(license);
    if (Array.isArray(manifest.licenses)) {
        for (const entry of manifest.licenses) {
            const t = text(entry);
            if (t !== null) out.push(t);
        }
    }
    return out;
}

/** Whether `license` (a plain id or an SPDX expression) names `blocked` (lower-case), ignoring case. */
function licenseMatches(license, blocked) {
    const lower = asciiLower(license.trim());
    return lower === blocked || lower.split(/[\s()]/u).some((term) => term === blocked);
}

function truncate(s, max) {
    const chars = Array.from(s);
    return chars.length > max ? `${chars.slice(0, max).join('')}...` : s;
}

/** The install-time script the manifest would run, if any. */
function installScript(manifest, version) {
    const scripts = isObject(manifest.scripts) ? manifest.scripts : null;
    for (const hook of ['preinstall', 'install', 'postinstall']) {
        if (scripts !== null && Object.hasOwn(scripts, hook)) {
            const script = scripts[hook];
            const shown = typeof script === 'string' ? script.trim() : '';
            return shown === '' ? `a ${hook} script` : `a ${hook} script (\`${truncate(shown, 80)}\`)`;
        }
    }
    // npm runs `node-gyp rebuild` for a package with a top-level binding.gyp
    // unless it has its own (pre)install script or says `gypfile: false`.
    const gyp = version.files.some((f) => {
        const slash = f.path.indexOf('/');
        return slash >= 0 && f.path.slice(slash + 1) === 'binding.gyp';
    });
    if (gyp && manifest.gypfile !== false) return 'a binding.gyp (npm runs `node-gyp rebuild` at install)';
    return null;
}

const ACCEPT = { tag: 'accept' };
const block = (reason) => ({ tag: 'block', val: reason });

function check(r, version) {
    const id = `${version.name}@${version.version}`;
    const pattern = r.namePatterns.find((p) => p.regex.test(version.name));
    if (pattern !== undefined) return block(`${id} blocked by rule name_patterns: package name matches \`${pattern.source}\``);
    if (r.licenses.length === 0 && !r.blockInstallScripts) return ACCEPT;
    let manifest;
    try {
        manifest = JSON.parse(version.manifestJson);
    } catch (e) {
        return block(`${id} blocked: its manifest is not valid JSON (${message(e)})`);
    }
    if (!isObject(manifest)) manifest = {};
    for (const license of declaredLicenses(manifest)) {
        const hit = r.licenses.find((b) => licenseMatches(license, b.lower));
        if (hit !== undefined) {
            return block(
                asciiLower(license.trim()) === hit.lower
                    ? `${id} blocked by rule licenses: license \`${license}\` is blocked`
                    : `${id} blocked by rule licenses: license \`${license}\` includes blocked \`${hit.id}\``,
            );
        }
    }
    if (r.blockInstallScripts) {
        const script = installScript(manifest, version);
        if (script !== null) return block(`${id} blocked by rule block_install_scripts: it has ${script}`);
    }
    return ACCEPT;
}

export function init() {
    try {
        const r = rules();
        log(
            'info',
            `${r.namePatterns.length} name pattern(s), ${r.licenses.length} blocked license(s), install scripts ${r.blockInstallScripts ? 'blocked' : 'allowed'}`,
        );
    } catch (e) {
        throw message(e);
    }
}

export const rule = {
    check(version) {
        let r;
        try {
            r = rules();
        } catch (e) {
            return block(message(e));
        }
        return check(r, version);
    },
};
