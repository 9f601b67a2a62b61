// {{name}} (hook-formatter): turns a registry event into a chat message,
// `{"channel": ..., "text": "alice published left-pad@1.0.0"}`.

import { config } from 'cairn:plugin/host@{{wit_version}}';

// [plugins.config] channel = "#releases"
let channel = '';

const VERBS = {
    'package:publish': 'published',
    'package:unpublish': 'unpublished',
    'package:deprecate': 'deprecated',
    'package:dist-tag': 'moved a dist-tag of',
    'package:owner': 'changed the owners of',
};

export function init() {
    channel = JSON.parse(config()).channel;
    if (typeof channel !== 'string') throw '`channel` (a string) is missing';
}

export const formatter = {
    format(event) {
        const who = event.actor ?? 'someone';
        const version = event.version ? `@${event.version}` : '';
        const text = `${who} ${VERBS[event.kind] ?? event.kind} ${event.package}${version}`;
        return {
            body: new TextEncoder().encode(JSON.stringify({ channel, text })),
            contentType: 'application/json',
            headers: [{ name: 'x-chat-source', value: 'cairn' }],
        };
    },
};
