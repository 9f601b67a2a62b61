// `hostile_js.wasm` (auth-policy): misbehaves on purpose, for the host's
// sandbox tests: the JavaScript twin of the Rust `hostile.wasm`. Config
// `mode` picks what `authorize` does:
//
//   loop       spins forever
//   alloc      allocates and touches 1 GiB in 1 MiB steps; allows if it got there
//   trap       throws `new Error("hostile trap")` (uncaught)
//   garbage    denies with a 2 MiB reason full of control characters
//   ok         allows
//   deny       denies with "hostile says no"
//   init-fail  `init` fails with "init refused by config"
//
// Each mode first writes `hostile: <mode>` to stderr. The Rust sample's
// `file` and `socket` modes have no JavaScript twin: the engine has no file
// or socket API to try. Not for production.

import { readConfigKey, string } from '../lib/config.js';

const MODES = ['loop', 'alloc', 'trap', 'garbage', 'ok', 'deny', 'init-fail'];

function mode() {
    const m = readConfigKey('mode', string());
    if (m === null) throw `hostile: set \`mode\` to one of ${MODES.join(', ')}`;
    if (!MODES.includes(m)) throw `hostile: unknown mode \`${m}\` (one of ${MODES.join(', ')})`;
    return m;
}

export function init() {
    if (mode() === 'init-fail') {
        console.error('hostile: init-fail');
        throw 'init refused by config';
    }
}

// Keeps what `alloc` allocated reachable, so the collector cannot free it.
const kept = [];

export const policy = {
    authorize(_action, _pkg, _caller) {
        let m;
        try {
            m = mode();
        } catch (e) {
            return { tag: 'deny', val: String(e) };
        }
        console.error(`hostile: ${m}`);
        switch (m) {
            case 'loop': {
                let n = 0;
                for (;;) n = (n + 1) | 0;
            }
            case 'alloc': {
                for (let i = 0; i < 1024; i++) kept.push(new Uint8Array(1 << 20).fill(i | 1));
                console.error(`hostile: allocated ${kept.length} MiB`);
                return { tag: 'allow' };
            }
            case 'trap':
                throw new Error('hostile trap');
            case 'garbage': {
                const piece = '\u0000\u0007\u0008\u001b[2J\r\n\u007fgarbage\u202e';
                return { tag: 'deny', val: piece.repeat(Math.floor((2 << 20) / piece.length) + 1) };
            }
            case 'deny':
                return { tag: 'deny', val: 'hostile says no' };
            default:
                // "ok", and "init-fail" if the host called anyway.
                return { tag: 'allow' };
        }
    },
};
