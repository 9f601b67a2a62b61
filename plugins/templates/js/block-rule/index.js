// {{name}} (block-rule): blocks package versions whose install scripts use
// one of the configured words (say `curl` or `wget`), on publish and on sync.

import { config, log } from 'cairn:plugin/host@{{wit_version}}';

// [plugins.config] words = ["curl", "wget"]
let words = [];

export function init() {
    words = JSON.parse(config()).words ?? [];
    if (!Array.isArray(words) || !words.every((w) => typeof w === 'string')) throw '`words` must be a list of strings';
    log('info', `blocking install scripts that use ${words.join(', ')}`);
}

export const rule = {
    check(version) {
        const scripts = JSON.parse(version.manifestJson).scripts ?? {};
        for (const hook of ['preinstall', 'install', 'postinstall']) {
            const script = typeof scripts[hook] === 'string' ? scripts[hook] : '';
            const word = words.find((w) => script.includes(w));
            if (word !== undefined) return { tag: 'block', val: `${version.name}@${version.version}: its ${hook} script uses ${word}` };
        }
        return { tag: 'accept' };
    },
};
