// Builds one JavaScript plugin into a WebAssembly component with
// componentize-js (called by plugins/js/build.sh, which installs the pinned
// toolchain first):
//
//   node componentize.mjs TOOLS_DIR WIT_FILE PLUGIN_DIR OUT_FILE
//
// PLUGIN_DIR holds `index.js` (an ES module exporting the world's functions)
// and `plugin.json` ({"world": "auth-policy", "wasm": "..."}). The build runs
// from this folder so that a plugin may import the shared helpers of `lib/`.
//
// StarlingMonkey's `http` and `fetch-event` features are left out: no Cairn
// world imports `wasi:http`, and Cairn does not link it. `stdio` (uncaught
// errors and `console` reach the host's fault messages), `random` and
// `clocks` stay: Cairn links them, and without `stdio` a failure would trap
// without saying why.

import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [toolsDir, witPath, pluginDir, outFile] = process.argv.slice(2);
if (!outFile) {
    console.error('usage: node componentize.mjs TOOLS_DIR WIT_FILE PLUGIN_DIR OUT_FILE');
    process.exit(2);
}
const entry = join(toolsDir, 'node_modules/@bytecodealliance/componentize-js/src/componentize.js');
const { componentize } = await import(pathToFileURL(entry).href);
const meta = JSON.parse(await readFile(join(pluginDir, 'plugin.json'), 'utf8'));

const started = Date.now();
const { component } = await componentize({
    sourcePath: resolve(pluginDir, 'index.js'),
    witPath: resolve(witPath),
    worldName: meta.world,
    disableFeatures: ['http', 'fetch-event'],
});
await writeFile(outFile, component);
console.error(`componentize.mjs: ${pluginDir} (${meta.world}) -> ${outFile}, ${component.length} bytes, ${Date.now() - started} ms`);
