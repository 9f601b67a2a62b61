// The plugin's configuration for JavaScript plugins: the `[plugins.config]`
// table of its entry in Cairn's configuration file, handed over by the host as
// a JSON object, checked against a schema the way the Rust SDK's serde types
// with `deny_unknown_fields` check it (an unknown key or a wrong type fails
// `init`, naming the key).
//
//   import { readConfig, string, bool, list, table, optional } from '../lib/config.js';
//   const config = readConfig({ user: string(), admins: list(string(), []), strict: bool(false) });
//
// Each field is a checker; its argument is the default used when the key is
// absent (no argument: the key is required).

import { config as hostConfig, configGet as hostConfigGet } from 'cairn:plugin/host@0.1.1';

const REQUIRED = Symbol('required');

/** A configuration error: its message is what `init` fails with. */
export class ConfigError extends Error {}

function typeName(value) {
    if (value === null || value === undefined) return 'null';
    if (Array.isArray(value)) return 'sequence';
    if (typeof value === 'object') return 'map';
    if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
    if (typeof value === 'number') return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
    return `${typeof value} \`${value}\``;
}

function mismatch(value, expected, at) {
    const where = at ? ` at \`${at}\`` : '';
    throw new ConfigError(`invalid plugin configuration${where}: invalid type: ${typeName(value)}, expected ${expected}`);
}

function checker(check, fallback) {
    check.fallback = fallback;
    return check;
}

export function string(fallback = REQUIRED) {
    return checker((v, at) => (typeof v === 'string' ? v : mismatch(v, 'a string', at)), fallback);
}

export function bool(fallback = REQUIRED) {
    return checker((v, at) => (typeof v === 'boolean' ? v : mismatch(v, 'a boolean', at)), fallback);
}

export function list(item, fallback = REQUIRED) {
    return checker((v, at) => (Array.isArray(v) ? v.map((x, i) => item(x, `${at}[${i}]`)) : mismatch(v, 'a sequence', at)), fallback);
}

/** A table of free keys whose values all pass `item`, as a Map (keys in the configuration's order). */
export function table(item, fallback = REQUIRED) {
    return checker((v, at) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return mismatch(v, 'a map', at);
        return new Map(Object.entries(v).map(([k, x]) => [k, item(x, `${at}.${k}`)]));
    }, fallback);
}

/** `item`, or `null` when absent. */
export function optional(item) {
    return checker(item, null);
}

function expectedKeys(keys) {
    const quoted = keys.map((k) => `\`${k}\``);
    if (quoted.length === 0) return 'no fields';
    if (quoted.length === 1) return quoted[0];
    if (quoted.length === 2) return `${quoted[0]} or ${quoted[1]}`;
    return `one of ${quoted.join(', ')}`;
}

/** Reads the whole configuration table and checks it against `fields` ({ key: checker }). */
export function readConfig(fields) {
    const text = hostConfig().trim();
    const raw = text === '' || text === 'null' ? {} : JSON.parse(text);
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) mismatch(raw, 'a map', '');
    const keys = Object.keys(fields);
    for (const key of Object.keys(raw)) {
        if (!keys.includes(key)) {
            throw new ConfigError(`invalid plugin configuration: unknown field \`${key}\`, expected ${expectedKeys(keys)}`);
        }
    }
    const out = {};
    for (const [key, check] of Object.entries(fields)) {
        if (key in raw) {
            out[key] = check(raw[key], key);
        } else if (check.fallback === REQUIRED) {
            throw new ConfigError(`invalid plugin configuration: missing field \`${key}\``);
        } else {
            out[key] = check.fallback;
        }
    }
    return out;
}

/** One key of the configuration table checked by `check`; `null` when absent. */
export function readConfigKey(key, check) {
    const text = hostConfigGet(key);
    return text === undefined || text === null ? null : check(JSON.parse(text), key);
}

/**
 * Runs `load` once and keeps its result (or its error) for the following
 * calls, like the Rust SDK's `Loaded`: `init` calls it first, so a bad
 * configuration refuses the plugin.
 */
export function loaded(load) {
    let state = null;
    return () => {
        if (state === null) {
            try {
                state = { ok: true, value: load() };
            } catch (e) {
                state = { ok: false, error: e instanceof Error ? e.message : String(e) };
            }
        }
        if (!state.ok) throw new ConfigError(state.error);
        return state.value;
    };
}

/** The message of an error thrown by JavaScript code, for a `result<_, string>`. */
export function message(e) {
    return e instanceof Error ? e.message : String(e);
}
