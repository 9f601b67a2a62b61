// `chat_hook_js.wasm` (hook-formatter, built for `rich-hook-formatter`,
// `cairn:plugin@0.1.1`): the JavaScript twin of the Rust `chat_hook.wasm`.
// Turns registry events into chat messages, in the JSON shape Slack-style
// incoming webhooks accept, with a link to the package.
//
//   [plugins.config]
//   username = "npm"                                 # default "cairn"
//   headers = { "X-Channel" = "#releases" }          # extra request headers
//   package_link = "https://web.example.com/package/{name}"   # optional; default: the package in the registry
//
// A publish of `foo@1.0.0` by alice becomes
//
//   {"blocks": [{"text": {"text": "*alice* published <https://npm.example.com/foo|foo@1.0.0>", "type": "mrkdwn"}, "type": "section"},
//               {"text": {"text": "> The description", "type": "mrkdwn"}, "type": "section"},
//               {"elements": [{"text": "package:publish · 2024-05-01T12:00:00Z · hook of bob", "type": "mrkdwn"}], "type": "context"}],
//    "text": "alice published foo@1.0.0: https://npm.example.com/foo", "username": "npm"}
//
// sent as `application/json` (keys in the same order as the Rust sample's).
// The description (from the package document the host passes) is left out
// when there is none.

import { loaded, message, optional, readConfig, string, table } from '../lib/config.js';

const TOKEN = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
// Rust's `char::is_control`: the Unicode Cc category.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

const config = loaded(() => {
    const c = readConfig({ username: string('cairn'), headers: table(string(), new Map()), package_link: optional(string()) });
    const headers = [...c.headers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [name, value] of headers) {
        if (!TOKEN.test(name)) throw new Error(`chat-hook: \`headers\`: \`${name}\` is not a valid header name`);
        if (name.toLowerCase() === 'content-type') throw new Error('chat-hook: `headers`: the content type is always application/json');
        if (/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(value)) {
            throw new Error(`chat-hook: \`headers\`: the value of \`${name}\` has control characters`);
        }
    }
    const link = c.package_link;
    if (link !== null && !(link.startsWith('http://') || link.startsWith('https://'))) {
        throw new Error(`chat-hook: \`package_link\` must be an http:// or https:// URL, got \`${link}\``);
    }
    return { username: c.username, headers, packageLink: link };
});

/** `text` with control characters (newlines included) turned into spaces. */
const oneLine = (text) => text.replace(CONTROL, ' ');

/** Escapes the three characters Slack-style markup reserves. */
const escape = (text) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

const present = (value) => value !== undefined && value !== null;

function payloadString(payload, key) {
    const value = payload !== null && typeof payload === 'object' ? payload[key] : undefined;
    return typeof value === 'string' ? value : null;
}

// \u0001A and \u0001T stand for the actor and the target until the end
// (`oneLine` keeps them out of the event's own text).
function template(event, payload) {
    const msg = payloadString(payload, 'message');
    const tag = payloadString(payload, 'tag');
    switch (event.kind) {
        case 'package:publish':
            return '\u0001A published \u0001T';
        case 'package:unpublish':
            return '\u0001A unpublished \u0001T';
        case 'package:deprecate':
            return msg ? `\u0001A deprecated \u0001T: ${oneLine(msg)}` : '\u0001A deprecated \u0001T';
        case 'package:dist-tag':
            return tag !== null && present(event.version) ? `\u0001A tagged \u0001T as ${oneLine(tag)}` : '\u0001A changed the dist-tags of \u0001T';
        case 'package:owner':
            return '\u0001A changed the owners of \u0001T';
        default:
            return `\u0001A: ${oneLine(event.kind)} on \u0001T`;
    }
}

/** `[plain, markdown]` sentences describing `event`; in the markdown the target links to `link` when there is one. */
function describe(event, link) {
    let payload = null;
    try {
        payload = JSON.parse(event.payloadJson);
    } catch {
        payload = null;
    }
    const words = template(event, payload);
    const actor = oneLine(present(event.actor) ? event.actor : 'someone');
    const target = oneLine(present(event.version) ? `${event.package}@${event.version}` : event.package);
    const plain = words.replaceAll('\u0001A', actor).replaceAll('\u0001T', target);
    const targetMd = link !== null ? `<${escape(link)}|${escape(target).replaceAll('|', '¦')}>` : `\`${escape(target)}\``;
    const markdown = escape(words).replaceAll('\u0001A', `*${escape(actor)}*`).replaceAll('\u0001T', targetMd);
    return [plain, markdown];
}

/** Where the message links to: the configured template, else the package in the registry. */
function linkOf(c, event, context) {
    if (c.packageLink !== null) return c.packageLink.replaceAll('{name}', event.package);
    return context.packageUrl === '' ? null : context.packageUrl;
}

/** The package's description, from the document the host passed. */
function description(context) {
    if (!present(context.packageJson)) return null;
    let doc;
    try {
        doc = JSON.parse(context.packageJson);
    } catch {
        return null;
    }
    const text = doc !== null && typeof doc === 'object' ? doc.description : undefined;
    if (typeof text !== 'string') return null;
    const cut = Array.from(oneLine(text)).slice(0, 300).join('');
    return cut.trim() === '' ? null : cut;
}

const section = (text) => ({ text: { text, type: 'mrkdwn' }, type: 'section' });

function format(c, event, context) {
    const link = linkOf(c, event, context);
    const [plain, markdown] = describe(event, link);
    const text = link !== null ? `${plain}: ${link}` : plain;
    let footer = event.time === '' ? event.kind : `${event.kind} · ${event.time}`;
    if (context.hookOwner !== '') footer += ` · hook of ${escape(oneLine(context.hookOwner))}`;
    const blocks = [section(markdown)];
    const d = description(context);
    if (d !== null) blocks.push(section(`> ${escape(d)}`));
    blocks.push({ elements: [{ text: footer, type: 'mrkdwn' }], type: 'context' });
    const body = JSON.stringify({ blocks, text, username: c.username });
    return {
        body: new TextEncoder().encode(body),
        contentType: 'application/json',
        headers: c.headers.map(([name, value]) => ({ name, value })),
    };
}

export function init() {
    try {
        config();
    } catch (e) {
        throw message(e);
    }
}

export const richFormatter = {
    format(event, context) {
        try {
            return format(config(), event, context);
        } catch (e) {
            throw message(e);
        }
    },
};
